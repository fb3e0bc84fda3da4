"""Lifecycle against the simulator: logons, counting finished sessions exactly once, shutdown."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from fakes import wait_for

from exporter.simulator import SimSession

from . import reference
from .conftest import MakeExporter, MakeSim
from .helpers import (
    COUNTERS,
    SESSION_GAUGES,
    ExporterProcess,
    assert_samples_equal,
    scrape,
    server_config,
    write_config,
)

pytestmark = pytest.mark.integration

SESSIONS_ROUTE = "GET /api/systemSessions"
LOGON_ROUTE = "POST /api/sessionMngr"


def test_one_logon_across_many_polls_and_exactly_one_more_after_forced_expiry(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim()
    exporter = make_exporter([server_config(sim)])

    for _ in range(6):
        assert exporter.poll()
    assert sim.stats.logons == 1
    assert sim.stats.requests_by_route[LOGON_ROUTE] == 1
    assert sim.stats.requests_by_route[SESSIONS_ROUTE] == 6
    assert exporter.scrape().value("veeam_em_logins_total", server="em01") == 1.0

    sim.expire_tokens()
    assert exporter.poll()  # 401 on the old token, one fresh logon, the retry succeeds
    assert sim.stats.unauthorized == 1
    assert sim.stats.logons == 2
    for _ in range(3):
        assert exporter.poll()
    assert sim.stats.logons == 2
    assert sim.stats.active_tokens() == 1  # the expired token is dead; only the new one lives

    result = exporter.scrape()
    assert result.value("veeam_em_logins_total", server="em01") == 2.0
    assert result.value("veeam_em_polls_total", server="em01") == 10.0
    assert result.errors("em01") == dict.fromkeys(result.errors("em01"), 0.0)
    assert result.value("veeam_em_up", server="em01") == 1.0


def test_finishing_and_adding_sessions_moves_counters_by_exactly_that_much(
    make_sim: MakeSim, make_exporter: MakeExporter, now: datetime
) -> None:
    sim = make_sim()
    exporter = make_exporter([server_config(sim)])
    assert exporter.poll()  # the baseline: nothing already finished is counted
    baseline_types = {s.session_type for s in sim.sessions()}
    assert_samples_equal(
        exporter.scrape().select(COUNTERS, server="em01"),
        reference.counters("em01", baseline_types, counted=[]),
    )

    # k running sessions: some of the history's (if the frozen moment has any) and our own,
    # seen running by one poll before they finish.
    for minutes in (3, 12, 30):
        sim.add_session("CollectJob", created=now - timedelta(minutes=minutes))
    sim.add_session("DatabaseMaintenance", created=now - timedelta(hours=1))
    assert exporter.poll()
    running = [s for s in sim.sessions() if reference.is_running(s)]
    assert len(running) >= 4
    outcomes = ["CompletedSuccessfully", "Failed", "CompletedWarning"]
    # Durations on both sides of bucket bounds, one exactly on a bound (le is inclusive).
    lengths = [0.4, 30.0, 30.001, 95.5, 4000.0, 90000.0]
    for i, session in enumerate(running):
        sim.finish_session(
            session.id,
            state=outcomes[i % 3],
            ended=session.created + timedelta(seconds=lengths[i % len(lengths)]),
            message="finished by the test",
        )
    # m new sessions that are already finished when first seen: one of a new type, one with
    # an unknown outcome, one without an end time (counted, but no duration observed).
    added = [
        sim.add_session(
            "BrandNewJob",
            state="CompletedSuccessfully",
            created=now - timedelta(minutes=2),
            ended=now - timedelta(minutes=1),
        ),
        sim.add_session(
            "CollectJob",
            state="Postponed",
            created=now - timedelta(minutes=9),
            ended=now - timedelta(minutes=8, seconds=59),
        ),
        sim.add_session("CollectJob", state="Failed", created=now - timedelta(minutes=7)),
    ]
    assert exporter.poll()

    by_id = {s.id: s for s in sim.sessions()}
    counted: list[SimSession] = [by_id[s.id] for s in running] + [by_id[s.id] for s in added]
    expected = reference.counters("em01", baseline_types | {"BrandNewJob"}, counted)
    assert_samples_equal(exporter.scrape().select(COUNTERS, server="em01"), expected)
    finished_total = sum(
        v for v in exporter.scrape().select("veeam_em_system_sessions_finished_total").values()
    )
    assert finished_total == len(running) + len(added)

    # More polls of the same records count nothing more.
    for _ in range(3):
        assert exporter.poll()
    assert_samples_equal(exporter.scrape().select(COUNTERS, server="em01"), expected)


def test_an_empty_answer_then_the_full_one_counts_nothing_twice(
    make_sim: MakeSim, make_exporter: MakeExporter, now: datetime
) -> None:
    sim = make_sim(json_casing="camel")
    exporter = make_exporter([server_config(sim, fmt="json")])
    assert exporter.poll()
    types = {s.session_type for s in sim.sessions()}
    first = sim.add_session(
        "CollectJob", state="Failed", created=now - timedelta(seconds=70), ended=now
    )
    assert exporter.poll()
    expected = reference.counters("em01", types, counted=[first])
    assert_samples_equal(exporter.scrape().select(COUNTERS, server="em01"), expected)

    # The EM answers an empty collection once: a successful poll with no session gauges,
    # while the counters stay as they were.
    second = sim.add_session(
        "CollectJob", state="CompletedWarning", created=now - timedelta(seconds=20), ended=now
    )
    sim.inject("empty")
    assert exporter.poll()
    during = exporter.scrape()
    assert during.value("veeam_em_up", server="em01") == 1.0
    assert during.select("veeam_em_system_sessions", server="em01") == {}
    assert_samples_equal(during.select(COUNTERS, server="em01"), expected)

    # Back to the full answer: everything comes back, and only the new session is counted.
    assert exporter.poll()
    assert exporter.poll()
    after = exporter.scrape()
    assert sum(after.select("veeam_em_system_sessions", server="em01").values()) == len(
        sim.sessions()
    )
    expected = reference.counters("em01", types, counted=[first, second])
    assert_samples_equal(after.select(COUNTERS, server="em01"), expected)


def test_a_type_that_leaves_the_window_keeps_its_counters_but_not_its_gauges(
    make_sim: MakeSim, make_exporter: MakeExporter, now: datetime
) -> None:
    sim = make_sim()
    exporter = make_exporter([server_config(sim)])
    assert exporter.poll()
    types = {s.session_type for s in sim.sessions()}
    once = sim.add_session(
        "OnceJob", state="CompletedWarning", created=now - timedelta(seconds=8), ended=now
    )
    assert exporter.poll()
    assert exporter.scrape().select(SESSION_GAUGES, session_type="OnceJob")

    sim.remove_session(once.id)
    assert exporter.poll()
    result = exporter.scrape()
    assert result.select(SESSION_GAUGES, session_type="OnceJob") == {}
    expected = reference.counters("em01", types | {"OnceJob"}, counted=[once])
    assert_samples_equal(result.select(COUNTERS, server="em01"), expected)


def test_the_real_process_logs_out_on_sigterm_and_exits_0(
    make_sim: MakeSim, tmp_path: Path
) -> None:
    password = "Sig-Term-Pa55word"
    sim = make_sim(password=password)
    config = write_config(tmp_path, sim, password, timeout="5s")
    process = ExporterProcess(["--config.file", str(config), "--web.listen-address", "127.0.0.1:0"])
    try:
        base = process.listening_base()

        def up() -> bool:
            return scrape(base).value("veeam_em_up", server="em01") == 1.0

        assert wait_for(up, timeout=15)
        assert requests.get(base + "/-/ready", timeout=5).status_code == 200
        assert sim.stats.logons == 1
        assert sim.stats.active_tokens() == 1
        code = process.terminate()
    finally:
        process.kill()
    assert code == 0
    assert sim.stats.logouts == 1
    assert sim.stats.active_tokens() == 0
    output = "\n".join(process.lines)
    assert "msg=stopped" in output
    assert password not in output


def test_sigterm_during_a_hung_poll_still_logs_out_and_exits_0_within_seconds(
    make_sim: MakeSim, tmp_path: Path
) -> None:
    sim = make_sim()
    sim.inject("delay", delay=30.0)  # the first fetch hangs far longer than shutdown may take
    config = write_config(tmp_path, sim, sim.settings.password, timeout="60s")
    process = ExporterProcess(["--config.file", str(config), "--web.listen-address", "127.0.0.1:0"])
    try:
        base = process.listening_base()
        assert wait_for(lambda: sim.stats.faults_served.get("delay") == 1, 15)
        # Not ready while the first poll has not ended; /metrics answers anyway.
        assert requests.get(base + "/-/ready", timeout=5).status_code == 503
        waiting = scrape(base)
        assert waiting.value("veeam_em_up", server="em01") == 0.0
        assert waiting.value("veeam_em_poll_duration_seconds", server="em01") == 0.0
        assert waiting.value("veeam_em_polls_total", server="em01") == 1.0
        assert (
            waiting.value("veeam_em_last_successful_poll_timestamp_seconds", server="em01") is None
        )
        began = time.monotonic()
        code = process.terminate(timeout=15)
        took = time.monotonic() - began
    finally:
        process.kill()
    assert code == 0
    assert took < 8.0
    assert sim.stats.logons == 1
    assert sim.stats.logouts == 1
