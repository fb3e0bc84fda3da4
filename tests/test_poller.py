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
from answers import DAY, Session, xml_answer
from fakes import Answer, ScriptedSource, wait_for
from prometheus_client import CollectorRegistry, generate_latest

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
