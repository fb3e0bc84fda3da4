"""Faults injected into the simulator: reasons, staleness, recovery, isolation of servers."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from fakes import wait_for

from exporter.config import Format
from exporter.simulator.faults import Target

from .conftest import MakeExporter, MakeSim
from .helpers import COUNTERS, SESSION_GAUGES, ExporterOnSocket, Scrape, server_config

pytestmark = pytest.mark.integration

TIMEOUT = 0.5  # the server's request timeout in these tests; a "delay" fault outlasts it


def gauges(result: Scrape, server: str = "em01") -> dict[str, float]:
    return {k[0]: v for k, v in result.select(SESSION_GAUGES, server=server).items()}


FAULTS = [
    # fault, count, target, format, accepted reasons
    pytest.param("500", 1, "systemSessions", "xml", {"http"}, id="500"),
    pytest.param("503", 1, "systemSessions", "json", {"http"}, id="503"),
    pytest.param("malformed", 1, "systemSessions", "xml", {"parse"}, id="malformed-xml"),
    pytest.param("malformed", 1, "systemSessions", "json", {"parse"}, id="malformed-json"),
    # A body cut short by the connection may be noticed by the reader or by the parser.
    pytest.param(
        "truncated", 1, "systemSessions", "xml", {"connection", "parse"}, id="truncated-xml"
    ),
    pytest.param(
        "truncated", 1, "systemSessions", "json", {"connection", "parse"}, id="truncated-json"
    ),
    pytest.param("reset", 1, "systemSessions", "xml", {"connection"}, id="reset"),
    pytest.param("delay", 1, "systemSessions", "xml", {"timeout"}, id="delay"),
    pytest.param("401", 2, "systemSessions", "xml", {"auth"}, id="401-twice"),
    pytest.param("503", 1, "logon", "xml", {"http"}, id="logon-503"),
    pytest.param("reset", 1, "logon", "xml", {"connection"}, id="logon-reset"),
    pytest.param("delay", 1, "logon", "xml", {"timeout"}, id="logon-delay"),
    pytest.param("401", 1, "logon", "xml", {"auth"}, id="logon-401"),
    # A byte every 4 x TIMEOUT, for ever: only a deadline on the whole request ends it.
    pytest.param("trickle", 1, "systemSessions", "json", {"timeout"}, id="trickle"),
    pytest.param("trickle", 1, "logon", "xml", {"timeout"}, id="logon-trickle"),
    pytest.param("redirect", 1, "systemSessions", "xml", {"http"}, id="redirect"),
    pytest.param("redirect", 1, "logon", "xml", {"http"}, id="logon-redirect"),
    pytest.param("gzip_bomb", 1, "systemSessions", "xml", {"parse"}, id="gzip-bomb"),
]


@pytest.mark.parametrize(("fault", "count", "target", "fmt", "reasons"), FAULTS)
def test_each_fault_fails_that_poll_with_its_reason_and_the_next_one_recovers(
    make_sim: MakeSim,
    make_exporter: MakeExporter,
    fault: str,
    count: int,
    target: Target,
    fmt: Format,
    reasons: set[str],
) -> None:
    sim = make_sim()
    exporter = make_exporter([server_config(sim, fmt=fmt, timeout=TIMEOUT)])
    if target == "systemSessions":
        assert exporter.poll()  # a good snapshot first, logged on
        before = exporter.scrape()
    sim.inject(fault, count, delay=4 * TIMEOUT, target=target)

    assert not exporter.poll()
    assert sim.stats.faults_served == {fault: count}
    failed = exporter.scrape()  # /metrics answers all along
    assert failed.value("veeam_em_up", server="em01") == 0.0
    errors = {reason: n for reason, n in failed.errors("em01").items() if n}
    assert len(errors) == 1 and set(errors) <= reasons and sum(errors.values()) == 1, errors
    if target == "systemSessions":
        # The last good answer stays until stale_after; the counters are untouched.
        assert failed.select(SESSION_GAUGES, server="em01") == before.select(
            SESSION_GAUGES, server="em01"
        )
        assert failed.select(COUNTERS) == before.select(COUNTERS)
    else:
        assert gauges(failed) == {}
        assert (
            failed.value("veeam_em_last_successful_poll_timestamp_seconds", server="em01") is None
        )

    assert exporter.poll()
    recovered = exporter.scrape()
    assert recovered.value("veeam_em_up", server="em01") == 1.0
    assert recovered.errors("em01") == failed.errors("em01")
    assert sum(recovered.select("veeam_em_system_sessions", server="em01").values()) == len(
        sim.sessions()
    )


def test_one_401_costs_one_fresh_logon_and_no_error(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim()
    exporter = make_exporter([server_config(sim)])
    assert exporter.poll()
    sim.inject("401")
    assert exporter.poll()
    result = exporter.scrape()
    assert result.value("veeam_em_logins_total", server="em01") == 2.0
    assert set(result.errors("em01").values()) == {0.0}
    assert sim.stats.logons == 2


def test_a_wrong_password_is_auth_and_the_right_one_recovers(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim(password="The-Right-Pa55word")
    exporter = make_exporter([server_config(sim, password="A-Wrong-Pa55word")])

    assert not exporter.poll()
    result = exporter.scrape()
    assert result.value("veeam_em_up", server="em01") == 0.0
    assert result.errors("em01")["auth"] == 1.0
    assert result.value("veeam_em_last_successful_poll_timestamp_seconds", server="em01") is None
    assert gauges(result) == {}
    assert sim.stats.failed_logons == 1
    assert "A-Wrong-Pa55word" not in result.text

    # The EM's password is changed to what the exporter has.
    sim.set(password="A-Wrong-Pa55word")
    assert exporter.poll()
    # ... and rotated again under a live token: the next 401 finds the logon refused.
    sim.set(password="Rotated-Pa55word")
    sim.expire_tokens()
    assert not exporter.poll()
    result = exporter.scrape()
    assert result.errors("em01")["auth"] == 2.0
    assert sum(result.errors("em01").values()) == 2.0
    assert sim.stats.failed_logons == 2


def test_stale_session_gauges_disappear_counters_remain_and_recovery_brings_them_back(
    make_sim: MakeSim, make_exporter: MakeExporter, now: datetime
) -> None:
    stale_after = 1.0
    sim = make_sim()
    exporter = make_exporter(
        [server_config(sim, poll_interval=0.2, stale_after=stale_after, timeout=2.0)]
    )
    exporter.start()
    assert wait_for(lambda: exporter.scrape().value("veeam_em_up", server="em01") == 1.0, 10)
    sim.add_session(
        "CollectJob", state="Failed", created=now - timedelta(seconds=30), ended=now, message="x"
    )
    finished = "veeam_em_system_sessions_finished_total"

    def counted() -> bool:
        return sum(exporter.scrape().select(finished, server="em01").values()) == 1.0

    assert wait_for(counted, 10)

    sim.inject("500", 100_000)
    assert wait_for(lambda: exporter.scrape().value("veeam_em_up", server="em01") == 0.0, 10)

    seen: list[tuple[Scrape, float]] = []

    def gone() -> bool:
        result = exporter.scrape()
        seen.append((result, time.time()))
        return gauges(result) == {}

    assert wait_for(gone, 10)
    for result, scraped_by in seen:
        last_ok = result.value("veeam_em_last_successful_poll_timestamp_seconds", server="em01")
        assert last_ok is not None
        if not gauges(result):
            # Never dropped before stale_after: the scrape read its clock before `scraped_by`.
            assert scraped_by - last_ok > stale_after
    stale = seen[-1][0]
    assert stale.value("veeam_em_up", server="em01") == 0.0
    assert (stale.value("veeam_em_poll_errors_total", server="em01", reason="http") or 0) >= 1
    # Counters and the histogram are never dropped.
    assert sum(stale.select(finished, server="em01").values()) == 1.0
    assert stale.select(COUNTERS, server="em01") == seen[0][0].select(COUNTERS, server="em01")

    sim.clear_faults()

    def recovered() -> bool:
        result = exporter.scrape()
        return result.value("veeam_em_up", server="em01") == 1.0 and bool(gauges(result))

    assert wait_for(recovered, 10)
    back = exporter.scrape()
    assert sum(back.select("veeam_em_system_sessions", server="em01").values()) == len(
        sim.sessions()
    )
    assert sum(back.select(finished, server="em01").values()) == 1.0  # nothing counted again


def polls(exporter: ExporterOnSocket, server: str) -> float:
    return exporter.scrape().value("veeam_em_polls_total", server=server) or 0.0


def test_a_slow_server_does_not_delay_the_others_polls_or_a_scrape(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    slow_sim, fast_sim = make_sim(), make_sim()
    exporter = make_exporter(
        [
            server_config(slow_sim, "slow", poll_interval=0.2, timeout=10.0),
            server_config(fast_sim, "fast", poll_interval=0.2, timeout=10.0),
        ]
    )
    exporter.start()

    def both_up() -> bool:
        result = exporter.scrape()
        return all(result.value("veeam_em_up", server=s) == 1.0 for s in ("slow", "fast"))

    assert wait_for(both_up, 10)
    slow = exporter.poller("slow")
    slow_sim.inject("delay", delay=3.0)
    assert wait_for(lambda: slow_sim.stats.faults_served.get("delay") == 1, 5)
    stuck = slow.status  # replaced only when the delayed poll ends
    start = polls(exporter, "fast")

    assert wait_for(lambda: polls(exporter, "fast") >= start + 4, 2.5)
    began = time.monotonic()
    during = exporter.scrape()
    assert time.monotonic() - began < 1.0
    assert slow.status is stuck, "the slow poll ended before the fast server polled 4 times"
    assert during.value("veeam_em_up", server="fast") == 1.0
    assert set(during.errors("fast").values()) == {0.0}

    # Slow is not failed: it ends well within its timeout.
    assert wait_for(lambda: slow.status is not stuck, 10)
    assert slow.status.last_error is None
    assert set(exporter.scrape().errors("slow").values()) == {0.0}


def test_a_failing_server_does_not_disturb_the_other(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    failing_sim, good_sim = make_sim(), make_sim()
    failing_sim.inject("reset", 100_000)
    exporter = make_exporter(
        [
            server_config(failing_sim, "failing", poll_interval=0.2),
            server_config(good_sim, "good", poll_interval=0.2),
        ]
    )
    exporter.start()

    assert wait_for(lambda: polls(exporter, "good") >= 5, 10)
    assert wait_for(lambda: polls(exporter, "failing") >= 5, 10)
    result = exporter.scrape()
    assert result.value("veeam_em_up", server="good") == 1.0
    assert set(result.errors("good").values()) == {0.0}
    assert sum(result.select("veeam_em_system_sessions", server="good").values()) == len(
        good_sim.sessions()
    )
    assert result.value("veeam_em_up", server="failing") == 0.0
    assert result.errors("failing")["connection"] >= 5 - 1
    assert gauges(result, "failing") == {}
