"""Poller: error accounting, snapshot swap, backoff, scheduling, isolation between servers
and the type cap."""

from __future__ import annotations

import io
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

import pytest
from accounts import REFUSED, Account
from answers import DAY, Session, xml_answer
from fakes import Answer, ScriptedSource, wait_for
from prometheus_client import CollectorRegistry, generate_latest
from requests_mock import Mocker

from exporter.collector import SessionCollector
from exporter.config import MIN_POLL_INTERVAL, STALE_AFTER_FACTOR, ServerConfig
from exporter.health import ExporterMetrics
from exporter.poller import BACKOFF_START, JITTER, Poller, SessionSource
from exporter.reasons import REASONS, PollError

T = TypeVar("T")
FIXTURES = Path(__file__).parent / "fixtures"
GOOD = (FIXTURES / "golden_poll1.xml").read_bytes()


def server(name: str = "em01", poll_interval: float = 60.0, **kwargs: object) -> ServerConfig:
    return ServerConfig(
        name=name,
        url="https://em01:9398",
        username="u",
        password="p4ssword",
        poll_interval=poll_interval,
        # Polled as fast as each test needs; stale after three intervals, as by default.
        poll_floor=min(poll_interval, MIN_POLL_INTERVAL),
        stale_after=STALE_AFTER_FACTOR * poll_interval,
        **kwargs,  # type: ignore[arg-type]
    )


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def scripted(answers: list[Answer], **kwargs: float) -> tuple[Poller, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = ExporterMetrics(registry)

    def factory(cfg: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
        return ScriptedSource(answers, on_logon)

    return Poller(server("em01", **kwargs), metrics, client_factory=factory), registry


def test_series_exist_from_start_up() -> None:
    _, reg = scripted([])
    assert value(reg, "veeam_em_up", server="em01") == 0
    assert value(reg, "veeam_em_poll_duration_seconds", server="em01") == 0
    assert value(reg, "veeam_em_polls_total", server="em01") == 0
    for reason in REASONS:
        assert value(reg, "veeam_em_poll_errors_total", server="em01", reason=reason) == 0
    assert value(reg, "veeam_em_last_successful_poll_timestamp_seconds", server="em01") is None


@pytest.mark.parametrize("reason", REASONS)
def test_each_error_reason_is_counted_and_keeps_the_last_snapshot(reason: str) -> None:
    poller, reg = scripted([GOOD, PollError(reason, "boom")])
    assert poller.poll_once() is True
    kept = poller.state.snapshot
    assert kept is not None
    assert poller.poll_once() is False
    assert value(reg, "veeam_em_up", server="em01") == 0
    assert value(reg, "veeam_em_poll_errors_total", server="em01", reason=reason) == 1
    assert value(reg, "veeam_em_polls_total", server="em01") == 2
    assert poller.state.snapshot is kept
    assert poller.status.last_error == f"{reason}: boom"


def test_malformed_answer_is_a_parse_error_and_swaps_nothing() -> None:
    poller, reg = scripted([b"<SystemSessions><Sessions UID='x'>"])
    assert poller.poll_once() is False
    assert value(reg, "veeam_em_poll_errors_total", server="em01", reason="parse") == 1
    assert poller.state.snapshot is None
    assert poller.polled_once()


def test_unexpected_exception_costs_one_poll_not_the_thread() -> None:
    class Broken:
        def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T:
            raise RuntimeError("bug")

        def close(self, timeout: float = 3.0) -> None:
            pass

    registry = CollectorRegistry()
    poller = Poller(server(), ExporterMetrics(registry), client_factory=lambda s, cb: Broken())
    assert poller.poll_once() is False
    assert value(registry, "veeam_em_up", server="em01") == 0


def test_success_sets_health_and_counts_skipped_entries() -> None:
    clock = [1_738_022_400.0]
    ticks = iter([10.0, 10.75])
    registry = CollectorRegistry()

    def factory(cfg: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
        return ScriptedSource([GOOD], on_logon)

    poller = Poller(
        server(),
        ExporterMetrics(registry),
        client_factory=factory,
        clock=lambda: clock[0],
        monotonic=lambda: next(ticks),
    )
    assert poller.poll_once()
    assert value(registry, "veeam_em_up", server="em01") == 1
    assert value(registry, "veeam_em_poll_duration_seconds", server="em01") == 0.75
    assert (
        value(registry, "veeam_em_last_successful_poll_timestamp_seconds", server="em01")
        == clock[0]
    )
    assert value(registry, "veeam_em_skipped_sessions_total", server="em01") == 1
    assert value(registry, "veeam_em_logins_total", server="em01") == 1
    assert poller.state.snapshot is not None
    assert poller.state.snapshot.taken_at == clock[0]


def test_backoff_doubles_and_is_capped_at_the_poll_interval() -> None:
    failures = [PollError("timeout", "t")] * 6
    poller, _ = scripted(list(failures), poll_interval=60.0)
    no_jitter = random.Random(0)
    no_jitter.uniform = lambda a, b: 0.0  # type: ignore[method-assign]
    delays = []
    for _ in range(6):
        poller.poll_once()
        delays.append(poller.next_delay(False, no_jitter))
    assert delays == [BACKOFF_START, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_jitter_stays_within_bounds() -> None:
    poller, _ = scripted([], poll_interval=60.0)
    rng = random.Random(42)
    delays = [poller.next_delay(True, rng) for _ in range(200)]
    assert min(delays) >= 60.0
    assert max(delays) <= 60.0 * (1 + JITTER)
    assert len(set(delays)) > 100


class Gate:
    """A source whose fetch blocks until released, to model a hung EM."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T:
        self.entered.set()
        self.release.wait(10)
        return consume(io.BytesIO(GOOD))

    def close(self, timeout: float = 3.0) -> None:
        self.release.set()


def test_a_hung_server_does_not_delay_another() -> None:
    registry = CollectorRegistry()
    metrics = ExporterMetrics(registry)
    gate = Gate()
    slow = Poller(server("slow", poll_interval=0.2), metrics, client_factory=lambda s, cb: gate)
    answers: list[Answer] = [GOOD] * 50
    fast = Poller(
        server("fast", poll_interval=0.05),
        metrics,
        client_factory=lambda s, cb: ScriptedSource(answers, cb),
    )
    slow.start()
    fast.start()
    try:
        assert gate.entered.wait(5)
        assert wait_for(lambda: (value(registry, "veeam_em_polls_total", server="fast") or 0) >= 3)
        assert value(registry, "veeam_em_polls_total", server="slow") == 1
        assert not slow.polled_once()
    finally:
        fast.stop()
        slow.stop()


def test_stop_cuts_the_wait_for_the_next_poll_short() -> None:
    answers: list[Answer] = [GOOD] * 5
    poller, registry = scripted(answers, poll_interval=3600.0)
    poller.start()
    assert poller.wait_polled(5)
    started = time.monotonic()
    poller.stop()
    # Below stop()'s 2 s join timeout: the thread ended, it was not merely given up on.
    assert time.monotonic() - started < 1.0
    assert value(registry, "veeam_em_polls_total", server="em01") == 1


# --- never locking the EM account -------------------------------------------------------------

T0 = 1_738_022_400.0  # 2025-01-28T00:00:00Z


def guarded(
    factory: Callable[[ServerConfig, Callable[[], None]], SessionSource],
    clock: list[float],
    **kwargs: object,
) -> tuple[Poller, CollectorRegistry]:
    registry = CollectorRegistry()
    poller = Poller(
        server("em01", **kwargs),  # type: ignore[arg-type]
        ExporterMetrics(registry),
        client_factory=factory,
        clock=lambda: clock[0],
    )
    return poller, registry


def fields(record: logging.LogRecord) -> dict[str, object]:
    """The key/value fields of a log line (the message is record.getMessage())."""
    found: dict[str, object] = getattr(record, "fields", {})
    return found


def test_refused_logons_suspend_logons_until_one_retry_then_a_new_password_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.poller")
    secret = tmp_path / "em01.password"
    secret.write_text("p4ssword\n")
    em = Account("rotated-Pa55")
    clock = [T0]
    poller, reg = guarded(
        em.factory,
        clock,
        password_file=str(secret),
        max_logon_failures=3,
        logon_retry_after=3600.0,
    )

    def cycles(n: int) -> None:
        for _ in range(n):
            poller.poll_once()
            clock[0] += 60.0

    cycles(20)  # 20 poll intervals: three refused logons, then nothing
    assert em.attempts == ["p4ssword"] * 3
    assert value(reg, "veeam_em_polls_total", server="em01") == 3
    assert value(reg, "veeam_em_poll_errors_total", server="em01", reason="auth") == 3
    assert value(reg, "veeam_em_up", server="em01") == 0
    assert value(reg, "veeam_em_logon_suspended", server="em01") == 1
    suspended_at = T0 + 2 * 60.0  # the third poll
    assert poller.logon_suspended_until == suspended_at + 3600.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    suspended = [r for r in warnings if "logons suspended" in r.getMessage()]
    assert len(suspended) == 1
    assert fields(suspended[0])["until"] == "2025-01-28T01:02:00Z"
    assert fields(suspended[0])["refused_logons"] == 3

    # Up to the second before the retry is due: still nothing.
    clock[0] = suspended_at + 3600.0 - 1
    assert poller.poll_once() is False
    assert len(em.attempts) == 3
    # Exactly one attempt once logon_retry_after has passed; refused, so suspended again.
    clock[0] = suspended_at + 3600.0
    cycles(30)
    assert len(em.attempts) == 4
    assert value(reg, "veeam_em_polls_total", server="em01") == 4
    assert value(reg, "veeam_em_logon_suspended", server="em01") == 1
    assert poller.logon_suspended_until == suspended_at + 2 * 3600.0
    assert any(
        r.getMessage() == "logons resumed" and "logon_retry_after" in str(fields(r)["why"])
        for r in caplog.records
    )

    # The password file gets the new password: noticed at the next poll, without a logon.
    secret.write_text("rotated-Pa55\n")
    assert poller.poll_once() is True
    assert em.attempts[4:] == ["rotated-Pa55"]
    assert value(reg, "veeam_em_up", server="em01") == 1
    assert value(reg, "veeam_em_logon_suspended", server="em01") == 0
    assert value(reg, "veeam_em_logins_total", server="em01") == 1
    assert poller.logon_suspended_until is None
    assert any(
        r.getMessage() == "logons resumed" and fields(r)["why"] == "password file changed"
        for r in caplog.records
    )
    # No secret in any log line.
    for record in caplog.records:
        assert "p4ssword" not in record.getMessage() + str(fields(record))
        assert "rotated-Pa55" not in record.getMessage() + str(fields(record))


def test_a_changed_password_file_is_used_by_a_new_client_and_restarts_the_count(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("first-pass")
    em = Account("nobody-knows")
    clock = [T0]
    poller, reg = guarded(em.factory, clock, password_file=str(secret), max_logon_failures=3)
    poller.poll_once()
    poller.poll_once()
    secret.write_text("second-pass\n")  # a wrong one again, but a new password: counted anew
    for _ in range(5):
        poller.poll_once()
    assert em.attempts == ["first-pass"] * 2 + ["second-pass"] * 3
    assert value(reg, "veeam_em_logon_suspended", server="em01") == 1
    assert poller.server.password == "second-pass"


def test_an_unreadable_password_file_changes_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("p4ssword")
    em = Account("other")
    clock = [T0]
    poller, reg = guarded(em.factory, clock, password_file=str(secret), max_logon_failures=1)
    poller.poll_once()
    assert value(reg, "veeam_em_logon_suspended", server="em01") == 1
    secret.unlink()
    poller.poll_once()
    secret.write_text("   \n")  # empty once stripped, as the configuration would refuse it
    poller.poll_once()
    secret.write_text("p4ssword\n")  # back, unchanged: still the refused password
    poller.poll_once()
    assert em.attempts == ["p4ssword"]
    assert value(reg, "veeam_em_logon_suspended", server="em01") == 1


def test_a_password_file_the_client_cannot_read_is_auth_but_no_refused_logon(
    tmp_path: Path, requests_mock: Mocker
) -> None:
    # The real client reads the file before each logon; unreadable, it sends nothing, so the
    # EM refused nothing and the account cannot be locked by it: no count, no suspension.
    secret = tmp_path / "pw"
    secret.write_text("p4ssword")
    registry = CollectorRegistry()
    poller = Poller(
        server(password_file=str(secret), max_logon_failures=1), ExporterMetrics(registry)
    )
    secret.unlink()
    for _ in range(3):
        assert not poller.poll_once()
    poller.stop(timeout=0.1)
    assert requests_mock.request_history == []
    assert value(registry, "veeam_em_poll_errors_total", server="em01", reason="auth") == 3
    assert value(registry, "veeam_em_logon_suspended", server="em01") == 0
    assert poller.logon_suspended_until is None


@pytest.mark.parametrize("reason", [r for r in REASONS if r != "auth"])
def test_other_failures_neither_count_nor_reset_refused_logons(reason: str) -> None:
    answers: list[Answer] = [REFUSED, REFUSED]
    answers += [PollError(reason, "x")] * 5
    answers.append(REFUSED)
    poller, reg = scripted(answers, max_logon_failures=3)
    for _ in range(7):
        poller.poll_once()
    assert value(reg, "veeam_em_logon_suspended", server="em01") == 0
    assert poller.logon_suspended_until is None
    poller.poll_once()  # the third refused logon in a row
    assert value(reg, "veeam_em_logon_suspended", server="em01") == 1
    assert value(reg, "veeam_em_polls_total", server="em01") == 8


def test_a_success_resets_the_count() -> None:
    # The second success reuses the session (no logon), and still resets the count.
    answers: list[Answer] = [GOOD, REFUSED, REFUSED, GOOD, REFUSED, REFUSED, GOOD]
    poller, reg = scripted(answers, max_logon_failures=3)
    for _ in range(7):
        poller.poll_once()
    assert value(reg, "veeam_em_polls_total", server="em01") == 7
    assert value(reg, "veeam_em_logon_suspended", server="em01") == 0
    assert value(reg, "veeam_em_up", server="em01") == 1


def test_auth_failure_after_an_accepted_logon_is_not_a_refused_logon() -> None:
    class TokenRefused:
        """The EM accepts the logon, then answers 401 to its token (a role too weak)."""

        def __init__(self, on_logon: Callable[[], None]) -> None:
            self.on_logon = on_logon

        def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T:
            self.on_logon()
            raise PollError("auth", "GET /api/systemSessions: HTTP 401 again after a fresh logon")

        def close(self, timeout: float = 3.0) -> None:
            pass

    registry = CollectorRegistry()
    poller = Poller(
        server(max_logon_failures=1),
        ExporterMetrics(registry),
        client_factory=lambda s, cb: TokenRefused(cb),
    )
    for _ in range(5):
        poller.poll_once()
    assert value(registry, "veeam_em_polls_total", server="em01") == 5
    assert value(registry, "veeam_em_logon_suspended", server="em01") == 0


def test_max_logon_failures_0_never_suspends() -> None:
    poller, reg = scripted([REFUSED] * 10, max_logon_failures=0)
    for _ in range(10):
        poller.poll_once()
    assert value(reg, "veeam_em_polls_total", server="em01") == 10
    assert value(reg, "veeam_em_logon_suspended", server="em01") == 0


def test_while_suspended_the_poller_wakes_each_interval_and_on_time_for_the_retry() -> None:
    clock = [T0]
    em = Account("other")
    poller, _ = guarded(em.factory, clock, max_logon_failures=1, logon_retry_after=600.0)
    poller.poll_once()
    no_jitter = random.Random(0)
    no_jitter.uniform = lambda a, b: 0.0  # type: ignore[method-assign]
    # Not the 5 s backoff of a first failure: nothing can change faster than the file.
    assert poller.next_delay(False, no_jitter) == 60.0
    clock[0] = T0 + 570.0
    assert poller.next_delay(False, no_jitter) == 30.0


def test_the_suspension_gauge_is_removed_with_the_server() -> None:
    reg = CollectorRegistry()
    metrics = ExporterMetrics(reg)
    poller = Poller(
        server(max_logon_failures=1),
        metrics,
        client_factory=lambda s, cb: ScriptedSource([REFUSED], cb),
    )
    poller.poll_once()
    assert value(reg, "veeam_em_logon_suspended", server="em01") == 1
    metrics.remove_server("em01")
    assert value(reg, "veeam_em_logon_suspended", server="em01") is None


def test_ten_thousand_session_types_are_capped_in_every_family(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t0 = 1_750_000_000.0
    clock = [t0]
    registry = CollectorRegistry()
    storm = xml_answer(*(Session(f"s{i}", f"Type{i:05d}", created=t0 - 60) for i in range(10_000)))
    new_finish = Session("new", "Type00001", created=t0, result="Failed")
    storm_again = xml_answer(
        new_finish, *(Session(f"t{i}", f"Type{i:05d}", created=t0) for i in range(10_000))
    )
    sane = xml_answer(Session("c1", "CollectJob", created=t0), new_finish)
    answers: list[Answer] = [
        xml_answer(Session("base", created=t0 - 120)),
        storm,
        storm_again,
        sane,
    ]
    poller = Poller(
        server(max_session_types=100),
        ExporterMetrics(registry),
        client_factory=lambda cfg, on_logon: ScriptedSource(answers, on_logon),
        clock=lambda: clock[0],
    )
    registry.register(SessionCollector(lambda: [poller.state], clock=lambda: clock[0]))

    def exported_types(text: str) -> set[str]:
        return set(re.findall(r'session_type="([^"]*)"', text))

    assert poller.poll_once()
    with caplog.at_level(logging.WARNING, logger="exporter.poller"):
        for _ in range(2):
            clock[0] += 60
            assert poller.poll_once()
    text = generate_latest(registry).decode()
    # CollectJob holds counters from the baseline, so 99 places were left for the storm.
    assert exported_types(text) == {"CollectJob", *(f"Type{i:05d}" for i in range(99))}
    for family in (
        "veeam_em_system_sessions",
        "veeam_em_system_session_last_start_timestamp_seconds",
        "veeam_em_system_sessions_finished_total",
        "veeam_em_system_session_duration_seconds_bucket",
    ):
        lines = "\n".join(line for line in text.splitlines() if line.startswith(family + "{"))
        assert "Type00099" not in lines and "Type00098" in lines, family
    # About 3 kB per type: 100 types, where all 10,000 would take 30 MB.
    assert len(text) < 500_000
    assert value(registry, "veeam_em_skipped_sessions_total", server="em01") == 2 * 9_901
    assert (
        value(
            registry,
            "veeam_em_system_sessions_finished_total",
            server="em01",
            session_type="Type00001",
            result="Failed",
        )
        == 1
    )
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [getattr(r, "fields", {}).get("types") for r in warnings] == [9_901, 9_901]
    assert [getattr(r, "fields", {}).get("entries") for r in warnings] == [9_901, 9_901]

    # The EM answers sanely again: nothing more is dropped and no series is added.
    clock[0] += 60
    assert poller.poll_once()
    assert exported_types(generate_latest(registry).decode()) == exported_types(text)
    assert value(registry, "veeam_em_skipped_sessions_total", server="em01") == 2 * 9_901


def test_an_empty_first_answer_leaves_the_baseline_to_the_next() -> None:
    t0 = 1_750_000_000.0
    history = [Session(f"h{day}", created=t0 - day * DAY, result="Failed") for day in range(30)]
    new = Session("new", created=t0 + 30, result="Failed")
    poller, _ = scripted([xml_answer(), xml_answer(*history), xml_answer(*history, new)])

    def failed() -> float | None:
        return poller.state.ledger.finished.get(("CollectJob", "Failed"))

    assert poller.poll_once() and failed() is None
    assert poller.poll_once() and failed() == 0
    assert poller.poll_once() and failed() == 1


def test_unreadable_entries_are_logged_at_debug_with_why(caplog: pytest.LogCaptureFixture) -> None:
    good = xml_answer(Session("ok-1"))
    broken = good.replace(b"</SystemSessions>", b"") + (
        b'<Sessions UID="urn:veeam:SystemSession:x"><SessionType>CollectJob</SessionType>'
        b"<State>Failed</State></Sessions>"
        b"<Sessions><SessionType>CollectJob</SessionType></Sessions></SystemSessions>"
    )
    poller, registry = scripted([broken])
    with caplog.at_level(logging.DEBUG, logger="exporter.poller"):
        assert poller.poll_once()
    (line,) = [r for r in caplog.records if r.getMessage() == "unreadable session entries skipped"]
    fields = line.__dict__["fields"]
    assert fields["entries"] == 2
    assert fields["why"] == "no CreationTimeUTC: 1; no UID: 1"
    assert value(registry, "veeam_em_skipped_sessions_total", server="em01") == 2
