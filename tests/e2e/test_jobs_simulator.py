"""The job feed against the simulated EM's job sessions, over real sockets both ways.

The expectation is computed here from ``sim.job_sessions()`` (what the EM shows) by the stated
rules, independently of the exporter's code: each session finished after the baseline counted
once by job, result and retry; per job the result of its newest finished session (newest
creation, then end, then UID) and the number of sessions not finished.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime, timedelta

import pytest
import requests

from exporter.config import Format, JobSessionsConfig
from exporter.simulator import SimulatedEM

from .conftest import MakeExporter, MakeSim
from .helpers import ExporterOnSocket, Scrape, server_config

pytestmark = pytest.mark.integration

Job = tuple[str, str, str]  # backup_server, job_name, job_type
RESULTS = ("Success", "Warning", "Failed")


def job_of(labels: dict[str, str]) -> Job:
    return (labels["backup_server"], labels["job_name"], labels["job_type"])


def counted(result: Scrape) -> Counter[tuple[str, str, str]]:
    found: Counter[tuple[str, str, str]] = Counter()
    for (name, labels), value in result.samples.items():
        if name == "veeam_em_backup_job_sessions_finished_total" and value:
            found[(dict(labels)["job_name"], dict(labels)["result"], dict(labels)["retry"])] += int(
                value
            )
    return found


def per_job(result: Scrape, name: str, **match: str) -> dict[Job, float]:
    return {
        job_of(dict(labels)): value
        for (sample, labels), value in result.samples.items()
        if sample == name and all(dict(labels).get(k) == v for k, v in match.items())
    }


def expected_counts(sim: SimulatedEM, baseline: set[str]) -> Counter[tuple[str, str, str]]:
    expected: Counter[tuple[str, str, str]] = Counter()
    for session in sim.job_sessions():
        if session.finished and session.id not in baseline:
            result = session.result if session.result in RESULTS else "Unknown"
            expected[(session.job_name, result, "true" if session.is_retry else "false")] += 1
    return expected


def expected_last_results(sim: SimulatedEM) -> dict[Job, str]:
    newest: dict[Job, tuple[datetime, datetime, str, str]] = {}
    for s in sim.job_sessions():
        if not s.finished:
            continue
        key = (s.backup_server, s.job_name, s.job_type)
        rank = (s.created, s.ended or datetime.min.replace(tzinfo=s.created.tzinfo), s.uid.lower())
        result = s.result if s.result in RESULTS else "Unknown"
        if key not in newest or rank > newest[key][:3]:
            newest[key] = (*rank, result)
    return {key: value[3] for key, value in newest.items()}


def expected_running(sim: SimulatedEM) -> dict[Job, float]:
    running: dict[Job, float] = {}
    for s in sim.job_sessions():
        key = (s.backup_server, s.job_name, s.job_type)
        running[key] = running.get(key, 0.0) + (0.0 if s.finished else 1.0)
    return running


def poll_both(exporter: ExporterOnSocket) -> None:
    assert exporter.poll()
    assert exporter.poller().poll_feed("job_sessions") == 0


def check_against_records(exporter: ExporterOnSocket, sim: SimulatedEM, baseline: set[str]) -> None:
    result = exporter.scrape()
    assert counted(result) == expected_counts(sim, baseline)
    ones: dict[Job, set[str]] = {}
    for (sample, labels), value in result.samples.items():
        if sample == "veeam_em_backup_job_last_result" and value == 1:
            ones.setdefault(job_of(dict(labels)), set()).add(dict(labels)["result"])
    assert ones == {job: {r} for job, r in expected_last_results(sim).items()}
    assert per_job(result, "veeam_em_backup_job_running") == expected_running(sim)


@pytest.mark.parametrize(
    ("fmt", "casing", "version"),
    [("xml", "pascal", "12"), ("json", "pascal", "12"), ("json", "camel", "13")],
    ids=["xml", "json-v12", "json-v13"],
)
def test_job_counters_and_last_results_match_the_simulators_records(
    make_sim: MakeSim,
    make_exporter: MakeExporter,
    now: datetime,
    fmt: Format,
    casing: str,
    version: str,
) -> None:
    sim = make_sim(job_visibility="immediate", json_casing=casing, em_version=version)
    exporter = make_exporter([server_config(sim, fmt=fmt)])
    poll_both(exporter)
    baseline = {s.id for s in sim.job_sessions() if s.finished}
    assert baseline, "the demo estate has two days of finished sessions"
    check_against_records(exporter, sim, baseline)

    # Whatever runs now finishes (a copy parent, say); a job fails and its retry succeeds.
    for session in sim.job_sessions():
        if not session.finished:
            sim.finish_job_session(session.id, result="Warning", ended=now)
    failed = sim.add_job_session("Exchange Backup", created=now - timedelta(minutes=30))
    poll_both(exporter)
    check_against_records(exporter, sim, baseline)

    sim.finish_job_session(failed.id, result="Failed", ended=now - timedelta(minutes=10))
    retry = sim.add_job_session(
        "Exchange Backup", created=now - timedelta(minutes=5), is_retry=True, progress=40
    )
    poll_both(exporter)
    check_against_records(exporter, sim, baseline)
    sim.finish_job_session(retry.id, result="Success", ended=now)
    poll_both(exporter)
    check_against_records(exporter, sim, baseline)
    assert sim.stats.logons == 1  # one logon for both feeds, four polls each


def test_a_session_that_left_the_window_is_looked_up_and_counted(
    make_sim: MakeSim, make_exporter: MakeExporter, now: datetime
) -> None:
    sim = make_sim(job_visibility="immediate")
    exporter = make_exporter([server_config(sim)])
    old = sim.add_job_session("Daily VM Backup", created=now - timedelta(days=3))
    poll_both(exporter)
    baseline = {s.id for s in sim.job_sessions() if s.finished}
    sim.finish_job_session(old.id, result="Failed", ended=now)
    poll_both(exporter)
    check_against_records(exporter, sim, baseline)
    assert counted(exporter.scrape())[("Daily VM Backup", "Failed", "false")] == 1
    lookups = [r["target"] for r in sim.stats.recent_requests() if old.id in r["target"]]
    assert lookups == [f"/api/backupSessions/{old.id}?format=Entity"]


def test_sessions_show_only_after_the_ems_data_collection(
    make_sim: MakeSim, make_exporter: MakeExporter, now: datetime
) -> None:
    sim = make_sim()  # job_visibility="collection"
    exporter = make_exporter([server_config(sim)])
    poll_both(exporter)
    job = ("vbr01.corp.local", "SQL Servers Backup", "Backup")
    before = per_job(exporter.scrape(), "veeam_em_backup_job_running")[job]
    assert before == expected_running(sim)[job]
    added = sim.add_job_session("SQL Servers Backup", created=now - timedelta(minutes=1))
    # Until the EM's next data collection it shows nothing new, and neither does the exporter.
    assert added.id not in {s.id for s in sim.job_sessions()}
    poll_both(exporter)
    assert per_job(exporter.scrape(), "veeam_em_backup_job_running")[job] == before
    # The collection brings the new run (and whatever else the backup servers did meanwhile:
    # at some times of day a run of the same job finishes then).
    sim.collect()
    shown = {s.id: s for s in sim.job_sessions()}
    assert added.id in shown and not shown[added.id].finished
    poll_both(exporter)
    result = exporter.scrape()
    assert per_job(result, "veeam_em_backup_job_running")[job] == expected_running(sim)[job] >= 1
    # It is the new run that the exporter now sees start.
    starts = per_job(result, "veeam_em_backup_job_last_start_timestamp_seconds")
    assert starts[job] == added.created.timestamp()


def test_a_failing_job_feed_leaves_the_system_feed_alone(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim(job_visibility="immediate")
    exporter = make_exporter([server_config(sim)])
    sim.inject("503", 10, target="query")
    assert exporter.poll()
    assert exporter.poller().poll_feed("job_sessions") == 1
    assert exporter.poll()
    result = exporter.scrape()
    assert result.value("veeam_em_up", server="em01") == 1
    assert result.value("veeam_em_polls_total", server="em01") == 2
    assert result.errors("em01") == dict.fromkeys(
        ("connection", "timeout", "tls", "auth", "http", "parse"), 0.0
    )
    assert result.value("veeam_em_job_sessions_up", server="em01") == 0
    assert (
        result.value("veeam_em_job_sessions_poll_errors_total", server="em01", reason="http") == 1
    )
    assert not per_job(result, "veeam_em_backup_job_running")


def test_a_role_that_may_not_read_the_job_sessions_fails_the_job_feed_alone(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim(job_visibility="immediate")
    exporter = make_exporter([server_config(sim)])
    sim.inject("403", 10, target="query")
    assert exporter.poll()
    for failures in range(1, 5):  # more than max_logon_failures (3)
        assert exporter.poller().poll_feed("job_sessions", failures - 1) == failures
        assert exporter.poll()
    result = exporter.scrape()
    assert sim.stats.logons == 1  # no logon for the 403s, and the session was never ended
    assert sim.stats.logouts == 0
    assert result.value("veeam_em_logins_total", server="em01") == 1
    assert result.value("veeam_em_up", server="em01") == 1
    assert result.value("veeam_em_polls_total", server="em01") == 5
    assert result.value("veeam_em_logon_suspended", server="em01") == 0
    assert result.value("veeam_em_job_sessions_up", server="em01") == 0
    assert (
        result.value("veeam_em_job_sessions_poll_errors_total", server="em01", reason="auth") == 4
    )
    assert sim.stats.faults_served == {"403": 4}  # one query a poll, no retry


def test_a_window_beyond_max_pages_is_cut_keeping_the_newest(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim(jobs=20, job_runs_per_day=30, job_visibility="immediate")
    server = server_config(sim)
    jobs = JobSessionsConfig(page_size=50, max_pages=3)
    exporter = make_exporter([dataclasses.replace(server, job_sessions=jobs)])
    poll_both(exporter)
    result = exporter.scrape()
    assert (
        result.value("veeam_em_backup_job_query_truncated_total", server="em01", query="window")
        == 1
    )
    assert result.value("veeam_em_backup_job_query_pages", server="em01", query="window") == 3
    newest = max(s.created for s in sim.job_sessions())
    starts = per_job(result, "veeam_em_backup_job_last_start_timestamp_seconds")
    assert max(starts.values()) == pytest.approx(newest.timestamp())


def test_the_landing_page_shows_the_job_feed_beside_its_server(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim(job_visibility="immediate")
    exporter = make_exporter([server_config(sim)])
    page = requests.get(exporter.base + "/", timeout=5).text
    feeds = page.split("<h2>Other feeds</h2>", 1)[1]
    assert "<td>em01</td><td>job_sessions</td>" in feeds
    assert ">waiting</span>" in feeds

    poll_both(exporter)
    feeds = requests.get(exporter.base + "/", timeout=5).text.split("<h2>Other feeds</h2>", 1)[1]
    sessions = sim.job_sessions()
    jobs = {s.job_uid for s in sessions}
    assert ">up</span>" in feeds
    assert f"<td>{len(sessions)} sessions of {len(jobs)} jobs</td>" in feeds

    sim.inject("403", 1, target="query")
    assert exporter.poller().poll_feed("job_sessions") == 1
    page = requests.get(exporter.base + "/", timeout=5).text
    servers, feeds = page.split("<h2>Other feeds</h2>", 1)
    assert ">down</span>" in feeds and "HTTP 403" in feeds
    assert ">up</span>" in servers  # the server's own row: its system sessions are fine
