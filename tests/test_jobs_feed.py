"""The job-session feed in the poller: its requests, its schedule, its isolation, its metrics."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from fakes import wait_for
from jobanswers import Job, xml_page
from jobem import SYSTEM_SESSIONS, JobEM, JobSource
from prometheus_client import CollectorRegistry, generate_latest
from requests_mock import Mocker
from test_emclient import last

from exporter.app import Exporter
from exporter.config import Config, JobSessionsConfig, ServerConfig, SessionTypeFilter
from exporter.feed import Feed
from exporter.feeds import FEEDS
from exporter.health import ExporterMetrics
from exporter.jobsessions.feed import JobSessionsFeed
from exporter.poller import Poller, SessionSource
from exporter.reasons import REASONS, LogonRefused, PollError

DAY = 86400.0
T0 = 1781589600.0  # 2026-06-16T06:00:00Z
BASE = "https://em01.example.com:9398"


def guid(n: int) -> str:
    return f"{n:08x}-aaaa-4bbb-8ccc-dddddddddddd"


def server(**jobs: object) -> ServerConfig:
    return ServerConfig(
        name="em01",
        url=BASE,
        username="svc",
        password="pa55word",
        job_sessions=JobSessionsConfig(**jobs),  # type: ignore[arg-type]
    )


class Rig:
    """One poller on a JobEM, polled by hand at set times."""

    def __init__(self, em: JobEM, **jobs: object) -> None:
        self.em = em
        self.now = T0
        self.logons = 0
        self.system_answers: list[bytes | PollError] = []
        self.registry = CollectorRegistry(auto_describe=False)
        metrics = ExporterMetrics(self.registry)
        # Polls take no time: the expositions of two runs compare equal.
        self.poller = Poller(
            server(**jobs),
            metrics,
            client_factory=self.factory,
            clock=lambda: self.now,
            monotonic=lambda: 0.0,
        )
        for kind in FEEDS:
            self.registry.register(kind.renderer(self._feeds(kind.name), lambda: self.now))

    def _feeds(self, name: str) -> Callable[[], list[Feed]]:
        def feeds() -> list[Feed]:
            feed = self.poller.feed(name)
            return [] if feed is None else [feed]

        return feeds

    def factory(self, cfg: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
        def logon() -> None:
            self.logons += 1
            on_logon()

        return JobSource(self.em, self.system, logon)

    def system(self) -> bytes:
        if self.system_answers:
            answer = self.system_answers.pop(0)
            if isinstance(answer, PollError):
                raise answer
            return answer
        return SYSTEM_SESSIONS

    def jobs(self, at: float | None = None) -> bool:
        if at is not None:
            self.now = at
        return self.poller.poll_feed("job_sessions") == 0

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, {"server": "em01", **labels})

    def job(self, name: str, job_name: str = "Job A", **labels: str) -> float | None:
        return self.value(
            name,
            backup_server="vbr01.corp.local",
            job_name=job_name,
            job_type=labels.pop("job_type", "Backup"),
            **labels,
        )

    def filters(self) -> list[str]:
        return [
            dict(urllib.parse.parse_qsl(path.partition("?")[2])).get("filter", path)
            for path in self.em.requests
        ]


def finished(rig: Rig, result: str, retry: str = "false", job_name: str = "Job A") -> float | None:
    return rig.job(
        "veeam_em_backup_job_sessions_finished_total", job_name, result=result, retry=retry
    )


# --- requests ---------------------------------------------------------------------------------


def test_the_first_poll_reads_the_bootstrap_window_then_the_window() -> None:
    rig = Rig(JobEM(), window=2 * DAY, bootstrap_window=8 * DAY)
    assert rig.jobs()
    assert rig.jobs(T0 + 300)
    assert rig.filters() == [
        'CreationTime>="2026-06-08T06:00:00Z"',
        "State!=Stopped",
        'CreationTime>="2026-06-14T06:05:00Z"',
        "State!=Stopped",
    ]
    params = dict(urllib.parse.parse_qsl(rig.em.requests[0].partition("?")[2]))
    assert params == {
        "type": "BackupJobSession",
        "format": "Entities",
        "filter": 'CreationTime>="2026-06-08T06:00:00Z"',
        "sortDesc": "CreationTime",
        "pageSize": "500",
        "page": "1",
    }


def test_pages_are_read_to_the_last_and_a_query_beyond_max_pages_is_cut_and_counted() -> None:
    em = JobEM(jobs=[Job(guid(n), "Job A", T0 - 3600 - n, ended=T0 - n) for n in range(7)])
    rig = Rig(em, page_size=50, max_pages=40)
    assert rig.jobs()
    pages = [dict(urllib.parse.parse_qsl(p.partition("?")[2]))["page"] for p in em.requests]
    assert pages == ["1", "1"]  # 7 sessions: one page each query
    em.put(*(Job(guid(100 + n), "Job A", T0 - 1800 + n, ended=T0) for n in range(150)))
    em.requests.clear()
    assert rig.jobs(T0 + 300)
    pages = [dict(urllib.parse.parse_qsl(p.partition("?")[2]))["page"] for p in em.requests]
    assert pages == ["1", "2", "3", "4", "1"]
    assert rig.value("veeam_em_backup_job_query_pages", query="window") == 4
    assert rig.value("veeam_em_backup_job_query_truncated_total", query="window") == 0
    # Newest first: the sessions a cut loses are the oldest, never those just finished.
    capped = Rig(em, page_size=50, max_pages=2)
    assert capped.jobs()
    assert capped.value("veeam_em_backup_job_query_truncated_total", query="window") == 1
    assert capped.value("veeam_em_backup_job_query_truncated_total", query="running") == 0
    assert capped.value("veeam_em_backup_job_sessions_in_window") == 100


def test_an_em_that_refuses_not_equal_gets_the_list_of_running_states() -> None:
    em = JobEM(jobs=[Job(guid(1), "Job A", T0 - 40 * DAY).running()], refuse_not_equal=True)
    rig = Rig(em)
    assert rig.jobs()
    fallback = "State==Working,State==Starting,State==Stopping,State==Pausing,State==Resuming"
    assert rig.filters()[1:] == ["State!=Stopped", fallback]
    assert rig.job("veeam_em_backup_job_running") == 1
    em.requests.clear()
    assert rig.jobs(T0 + 300)
    assert rig.filters()[1:] == [fallback]  # remembered


def test_a_session_finishing_after_it_left_the_window_is_looked_up_and_counted() -> None:
    long = Job(guid(1), "Job A", T0 - 3 * DAY).running()
    em = JobEM(jobs=[long])
    rig = Rig(em, window=2 * DAY)
    assert rig.jobs()
    assert rig.job("veeam_em_backup_job_running") == 1
    em.put(long.done("Success", T0 + 100))  # finished: in neither query any more
    em.requests.clear()
    assert rig.jobs(T0 + 300)
    assert em.requests[-1] == f"/api/backupSessions/{guid(1)}?format=Entity"
    assert finished(rig, "Success") == 1
    assert rig.job("veeam_em_backup_job_running") == 0
    assert rig.job("veeam_em_backup_job_last_end_timestamp_seconds") == pytest.approx(T0 + 100)


def test_a_vanished_session_the_em_no_longer_has_is_forgotten() -> None:
    em = JobEM(jobs=[Job(guid(1), "Job A", T0 - 3 * DAY).running()])
    rig = Rig(em)
    assert rig.jobs()
    em.remove(guid(1))
    assert rig.jobs(T0 + 300)
    em.requests.clear()
    assert rig.jobs(T0 + 600)
    assert not any("backupSessions" in path for path in em.requests)  # asked once, not again
    assert finished(rig, "Success") == 0


def test_duplicates_and_unreadable_entries_are_counted_and_the_poll_still_succeeds() -> None:
    em = JobEM(jobs=[Job(guid(1), "Job A", T0 - 60, ended=T0)])
    rig = Rig(em)
    assert rig.jobs()
    page = xml_page(
        [
            Job(guid(2), "Job A", T0, ended=T0 + 10, result="Failed"),
            Job(guid(2), "Job A", T0).running(),
            Job(guid(3), "", T0, ended=T0 + 10),
        ]
    )
    em.intercept = lambda path: (
        (200, page) if 'filter=CreationTime>="' in urllib.parse.unquote(path) else None
    )
    assert rig.jobs(T0 + 300)
    assert rig.value("veeam_em_backup_job_duplicate_uid_total") == 1
    assert rig.value("veeam_em_backup_job_skipped_sessions_total") == 1
    assert finished(rig, "Failed") == 1  # the more final of the two


# --- metrics ------------------------------------------------------------------------------------


def test_the_feed_health_exists_from_start_up() -> None:
    rig = Rig(JobEM())
    assert rig.value("veeam_em_job_sessions_up") == 0
    assert rig.value("veeam_em_job_sessions_poll_duration_seconds") == 0
    assert rig.value("veeam_em_job_sessions_last_successful_poll_timestamp_seconds") is None
    for reason in REASONS:
        assert rig.value("veeam_em_job_sessions_poll_errors_total", reason=reason) == 0
    for query in ("window", "running"):
        assert rig.value("veeam_em_backup_job_query_truncated_total", query=query) == 0
    assert rig.value("veeam_em_backup_job_duplicate_uid_total") == 0
    assert rig.value("veeam_em_backup_job_skipped_sessions_total") == 0


def test_a_job_history_across_polls() -> None:
    em = JobEM(
        jobs=[
            Job(guid(1), "Job A", T0 - 2 * DAY, ended=T0 - 2 * DAY + 600, result="Failed"),
            Job(guid(2), "Job A", T0 - DAY, ended=T0 - DAY + 300),
            Job(guid(3), "Weekly", T0 - 6 * DAY, ended=T0 - 6 * DAY + 900, result="Warning"),
            Job(guid(4), "Job A", T0 - 60).running(progress=20),
        ]
    )
    rig = Rig(em)
    assert rig.jobs()
    # The baseline: nothing counted, every result at 0, the last result known.
    for result in ("Success", "Warning", "Failed"):
        for retry in ("false", "true"):
            assert finished(rig, result, retry) == 0
    assert rig.job("veeam_em_backup_job_last_result", result="Success") == 1
    assert rig.job("veeam_em_backup_job_last_result", result="Failed") == 0
    assert rig.job("veeam_em_backup_job_last_failure_timestamp_seconds") == pytest.approx(
        T0 - 2 * DAY + 600
    )
    assert rig.job("veeam_em_backup_job_running") == 1
    assert rig.job("veeam_em_backup_job_running_progress_percent") == 20
    assert rig.job("veeam_em_backup_job_oldest_running_start_timestamp_seconds") == T0 - 60
    assert rig.job("veeam_em_backup_job_last_start_timestamp_seconds") == T0 - 60
    # The running one fails, its retry succeeds.
    em.put(
        Job(guid(4), "Job A", T0 - 60).done("Failed", T0 + 120),
        Job(guid(5), "Job A", T0 + 200, ended=T0 + 260, retry=True),
    )
    assert rig.jobs(T0 + 300)
    assert finished(rig, "Failed") == 1
    assert finished(rig, "Success", "true") == 1
    assert rig.job("veeam_em_backup_job_last_result", result="Success") == 1
    assert rig.job("veeam_em_backup_job_last_duration_seconds") == pytest.approx(60)
    assert rig.job("veeam_em_backup_job_running") == 0
    assert rig.job("veeam_em_backup_job_running_progress_percent") is None
    assert rig.job("veeam_em_backup_job_oldest_running_start_timestamp_seconds") is None
    labels = {"backup_server": "vbr01.corp.local", "job_type": "Backup"}
    assert rig.value("veeam_em_backup_job_session_duration_seconds_count", **labels) == 2
    assert rig.value("veeam_em_backup_job_session_duration_seconds_sum", **labels) == (
        pytest.approx(180 + 60)
    )
    # The weekly job, out of the 48h window, keeps its last result.
    assert rig.job("veeam_em_backup_job_last_result", "Weekly", result="Warning") == 1


def test_job_gauges_hide_when_stale_but_counters_stay() -> None:
    em = JobEM(jobs=[Job(guid(1), "Job A", T0 - 60).running()])
    rig = Rig(em)
    assert rig.jobs()
    em.put(Job(guid(1), "Job A", T0 - 60).done("Success", T0 + 10))
    assert rig.jobs(T0 + 300)
    em.faults = {"/api/query": [500] * 10}
    assert not rig.jobs(T0 + 600)
    assert rig.job("veeam_em_backup_job_last_result", result="Success") == 1  # within 15m
    rig.now = T0 + 300 + 15 * 60 + 1
    assert rig.job("veeam_em_backup_job_last_result", result="Success") is None
    assert rig.value("veeam_em_backup_job_sessions_in_window") is None
    assert finished(rig, "Success") == 1
    assert rig.value("veeam_em_job_sessions_up") == 0
    assert rig.value("veeam_em_job_sessions_poll_errors_total", reason="http") == 1


def test_the_job_types_filter() -> None:
    em = JobEM(
        jobs=[
            Job(guid(1), "Job A", T0 - 60, ended=T0),
            Job(guid(2), "Copy\\Job A", T0 - 60, ended=T0, job_type="ImmediateBackupCopyWorker"),
        ]
    )
    rig = Rig(em, job_types=SessionTypeFilter(exclude=("ImmediateBackupCopyWorker",)))
    assert rig.jobs()
    text = generate_latest(rig.registry).decode()
    assert "ImmediateBackupCopyWorker" not in text
    assert 'job_name="Job A"' in text


# --- isolation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", [500, 400, 404, 401], ids=["server-error", "bad-request", "not-found", "auth"]
)
def test_a_failing_job_feed_never_touches_the_system_feed(fault: int) -> None:
    def system_exposition(fail_jobs: bool) -> list[str]:
        em = JobEM(faults={"/api/query": [fault] * 10} if fail_jobs else {})
        rig = Rig(em)
        assert rig.poller.poll_once()
        assert rig.jobs() is not fail_jobs
        assert rig.poller.poll_once()
        lines = generate_latest(rig.registry).decode().splitlines()
        return [
            line
            for line in lines
            if "job_sessions" not in line and "backup_job" not in line and "process_" not in line
        ]

    assert system_exposition(True) == system_exposition(False)


def test_an_unreadable_job_answer_fails_the_feed_as_parse_only() -> None:
    em = JobEM()
    rig = Rig(em)
    em.intercept = lambda path: (200, b"<html>maintenance</html>") if "query" in path else None
    assert rig.poller.poll_once()
    assert not rig.jobs()
    assert rig.value("veeam_em_job_sessions_poll_errors_total", reason="parse") == 1
    assert rig.value("veeam_em_up") == 1
    assert rig.value("veeam_em_poll_errors_total", reason="parse") == 0


def test_a_failed_poll_changes_nothing() -> None:
    em = JobEM(jobs=[Job(guid(n), "Job A", T0 - n, ended=T0) for n in range(120)])
    rig = Rig(em, page_size=50)
    assert rig.jobs()
    em.put(Job(guid(999), "Job A", T0 + 60, ended=T0 + 120))
    calls = [0]

    def third_fails(path: str) -> tuple[int, bytes] | None:
        calls[0] += 1
        return (503, b"") if calls[0] == 3 else None  # page 3 of the window

    em.intercept = third_fails
    assert not rig.jobs(T0 + 300)
    assert finished(rig, "Success") == 0
    em.intercept = None
    assert rig.jobs(T0 + 600)
    assert finished(rig, "Success") == 1


def test_a_disabled_feed_sends_nothing_and_shows_nothing() -> None:
    em = JobEM(jobs=[Job(guid(1), "Job A", T0 - 60, ended=T0)])
    rig = Rig(em, enabled=False)
    assert rig.poller.feed("job_sessions") is None
    assert rig.poller.poll_once()
    text = generate_latest(rig.registry).decode()
    assert "job_sessions" not in text and "backup_job" not in text
    assert em.requests == []


def test_a_client_made_only_for_system_sessions_runs_the_system_feed_alone() -> None:
    class SystemOnly:
        def fetch_sessions(self, consume: Callable[..., object]) -> object:
            raise PollError("timeout", "no")

        def close(self, timeout: float = 3.0) -> None:
            pass

    metrics = ExporterMetrics(CollectorRegistry())
    poller = Poller(server(), metrics, client_factory=lambda s, cb: SystemOnly())  # type: ignore[arg-type,return-value]
    assert [feed.name for feed in poller.feeds] == ["system_sessions"]


def test_while_logons_are_suspended_the_job_feed_sends_nothing() -> None:
    em = JobEM()
    rig = Rig(em)
    refused = LogonRefused("logon refused: HTTP 401")
    rig.system_answers = [refused, refused, refused]
    for _ in range(3):
        assert not rig.poller.poll_once()
    assert rig.poller.logon_suspended_until is not None
    assert rig.poller.poll_feed("job_sessions") is None
    assert em.requests == []
    assert rig.value("veeam_em_job_sessions_poll_errors_total", reason="auth") == 0


def test_a_refused_logon_seen_by_the_job_feed_counts_towards_the_suspension() -> None:
    em = JobEM(faults={"/api/query": [401] * 10})
    rig = Rig(em)
    rig.system_answers = [LogonRefused("logon refused: HTTP 401")] * 2
    assert not rig.poller.poll_once()
    assert not rig.poller.poll_once()
    assert rig.poller.poll_feed("job_sessions") == 1  # the third refusal in a row
    assert rig.poller.logon_suspended_until is not None


# --- one client, one logon, threads --------------------------------------------------------


def test_both_feeds_share_one_logon_on_the_real_client(requests_mock: Mocker) -> None:
    logon = requests_mock.post(
        f"{BASE}/api/sessionMngr/?v=latest",
        status_code=201,
        headers={"X-RestSvcSessionId": "dG9rZW4tc2hhcmVk"},
        content=b'<LogonSession xmlns="http://www.veeam.com/ent/v1.0"><SessionId>s</SessionId></LogonSession>',
    )
    requests_mock.get(f"{BASE}/api/systemSessions?format=Entity", content=SYSTEM_SESSIONS)
    query = requests_mock.get(
        f"{BASE}/api/query",
        content=xml_page([Job(guid(1), "Job A", T0 - 60, ended=T0)]),
    )
    registry = CollectorRegistry()
    poller = Poller(server(), ExporterMetrics(registry), clock=lambda: T0)
    try:
        assert poller.poll_once()
        assert poller.poll_feed("job_sessions") == 0
        assert poller.poll_once()
        assert poller.poll_feed("job_sessions") == 0
    finally:
        poller.stop(timeout=0.1)
    assert logon.call_count == 1
    assert registry.get_sample_value("veeam_em_logins_total", {"server": "em01"}) == 1
    assert query.call_count == 4  # two polls of two queries
    assert all(r.headers["X-RestSvcSessionId"] == "dG9rZW4tc2hhcmVk" for r in query.request_history)


TOKEN_A = "dG9rZW4tYQ=="
TOKEN_B = "dG9rZW4tYg=="


def logon_answer(token: str, session: str) -> dict[str, Any]:
    return {
        "status_code": 201,
        "headers": {"X-RestSvcSessionId": token},
        "content": (
            b'<LogonSession xmlns="http://www.veeam.com/ent/v1.0"><SessionId>'
            + session.encode()
            + b"</SessionId></LogonSession>"
        ),
    }


def job_health(poller: Poller) -> tuple[bool, dict[str, int], str | None]:
    feed = poller.feed("job_sessions")
    assert isinstance(feed, JobSessionsFeed)
    health = feed.state.health
    return health.up, {r: n for r, n in health.errors.items() if n}, health.last_error


def test_a_forbidden_job_query_fails_the_job_feed_alone_on_the_real_client(
    requests_mock: Mocker,
) -> None:
    # An account whose role reads the system sessions but not the query service.
    logon = requests_mock.post(f"{BASE}/api/sessionMngr/?v=latest", **logon_answer(TOKEN_A, "s1"))
    sessions = requests_mock.get(
        f"{BASE}/api/systemSessions?format=Entity", content=SYSTEM_SESSIONS
    )
    query = requests_mock.get(f"{BASE}/api/query", status_code=403, reason="Forbidden")
    logout = requests_mock.delete(f"{BASE}/api/logonSessions/s1", status_code=204)
    registry = CollectorRegistry()
    poller = Poller(replace(server(), max_logon_failures=3), ExporterMetrics(registry))
    try:
        assert poller.poll_once()
        for polls in range(1, 7):  # twice max_logon_failures
            assert poller.poll_feed("job_sessions", polls - 1) == polls
            assert poller.poll_once()  # the system feed goes on with the same token
    finally:
        poller.stop(timeout=0.1)
        closed_with = logout.call_count  # stop() logs out once, and only then

    def sample(name: str) -> float | None:
        return registry.get_sample_value(name, {"server": "em01"})

    assert logon.call_count == 1
    assert sample("veeam_em_logins_total") == 1
    assert closed_with == 1
    assert query.call_count == 6  # one per poll: no retry after a fresh logon
    assert {r.headers["X-RestSvcSessionId"] for r in sessions.request_history} == {TOKEN_A}
    assert sessions.call_count == 7
    assert sample("veeam_em_up") == 1
    assert sample("veeam_em_logon_suspended") == 0
    assert poller.logon_suspended_until is None
    up, errors, last_error = job_health(poller)
    assert (up, errors) == (False, {"auth": 6})
    assert last_error == (
        "auth: GET /api/query: HTTP 403 Forbidden: the account's Enterprise Manager role does "
        "not allow this resource; give it Portal Administrator or set job_sessions.enabled: false"
    )


def test_a_401_on_the_job_feed_still_means_one_fresh_logon_on_the_real_client(
    requests_mock: Mocker,
) -> None:
    logon = requests_mock.post(
        f"{BASE}/api/sessionMngr/?v=latest",
        [logon_answer(TOKEN_A, "s1"), logon_answer(TOKEN_B, "s2")],
    )
    sessions = requests_mock.get(
        f"{BASE}/api/systemSessions?format=Entity", content=SYSTEM_SESSIONS
    )
    page = xml_page([Job(guid(1), "Job A", T0 - 60, ended=T0)])
    query = requests_mock.get(
        f"{BASE}/api/query", [{"status_code": 401}, {"content": page}, {"content": page}]
    )
    registry = CollectorRegistry()
    poller = Poller(server(), ExporterMetrics(registry), clock=lambda: T0)
    try:
        assert poller.poll_once()
        assert poller.poll_feed("job_sessions") == 0
        assert poller.poll_once()
    finally:
        poller.stop(timeout=0.1)
    assert logon.call_count == 2
    assert registry.get_sample_value("veeam_em_logins_total", {"server": "em01"}) == 2
    tokens = [r.headers["X-RestSvcSessionId"] for r in query.request_history]
    assert tokens == [TOKEN_A, TOKEN_B, TOKEN_B]
    # The system feed follows the new session.
    assert last(sessions).headers["X-RestSvcSessionId"] == TOKEN_B


def test_logons_refused_to_either_feed_count_together_on_the_real_client(
    requests_mock: Mocker,
) -> None:
    refused = {"status_code": 401, "reason": "Unauthorized"}
    logon = requests_mock.post(
        f"{BASE}/api/sessionMngr/?v=latest",
        [logon_answer(TOKEN_A, "s1"), refused, refused, refused],
    )
    requests_mock.get(f"{BASE}/api/systemSessions?format=Entity", content=SYSTEM_SESSIONS)
    requests_mock.get(f"{BASE}/api/query", status_code=401)  # the password changed at the EM
    registry = CollectorRegistry()
    poller = Poller(replace(server(), max_logon_failures=3), ExporterMetrics(registry))
    try:
        assert poller.poll_once()
        assert poller.poll_feed("job_sessions") == 1  # its fresh logon refused: one
        assert not poller.poll_once()  # two
        assert poller.logon_suspended_until is None
        assert poller.poll_feed("job_sessions") == 1  # three
        assert poller.logon_suspended_until is not None
        assert poller.poll_feed("job_sessions") is None
    finally:
        poller.stop(timeout=0.1)
    assert logon.call_count == 4
    assert registry.get_sample_value("veeam_em_logon_suspended", {"server": "em01"}) == 1


def test_forbidden_job_polls_never_suspend_logons() -> None:
    em = JobEM(faults={"/api/query": [403] * 20})
    rig = Rig(em)
    for n in range(1, 11):
        assert rig.poller.poll_feed("job_sessions", n - 1) == n
        assert rig.poller.poll_once()
    assert rig.poller.logon_suspended_until is None
    assert rig.value("veeam_em_logon_suspended") == 0
    assert rig.value("veeam_em_job_sessions_poll_errors_total", reason="auth") == 10
    assert rig.value("veeam_em_up") == 1
    assert rig.logons == 1


def test_each_feed_runs_in_its_own_thread_on_its_own_schedule() -> None:
    em = JobEM(jobs=[Job(guid(1), "Job A", T0 - 60, ended=T0)])
    rig = Rig(em)
    rig.poller.start()
    try:
        assert wait_for(lambda: rig.value("veeam_em_job_sessions_up") == 1)
        assert wait_for(lambda: rig.value("veeam_em_up") == 1)
    finally:
        rig.poller.stop(timeout=2.0)
    assert rig.logons == 1
    # Both first polls ran at start-up; the job feed waits its 5 minutes for the next.
    assert len([p for p in em.requests if p.startswith("/api/query")]) == 2


def test_a_reload_hands_the_job_ledger_over() -> None:
    em = JobEM(jobs=[Job(guid(1), "Job A", T0 - 60).running()])
    now = [T0]
    exporter = Exporter(
        clock=lambda: now[0],
        client_factory=lambda cfg, cb: JobSource(em, lambda: SYSTEM_SESSIONS, cb),
    )
    exporter.apply(Config(servers=(server(),)))
    (poller,) = exporter.pollers()
    assert poller.poll_feed("job_sessions") == 0
    em.put(Job(guid(1), "Job A", T0 - 60).done("Failed", T0 + 10))
    now[0] = T0 + 300
    assert poller.poll_feed("job_sessions") == 0
    exporter.apply(Config(servers=(replace(server(), timeout=10.0),)))
    (successor,) = exporter.pollers()
    assert successor is not poller
    feed = successor.feed("job_sessions")
    assert isinstance(feed, JobSessionsFeed)
    assert feed.ledger is poller.feed("job_sessions").ledger  # type: ignore[union-attr]
    now[0] = T0 + 600
    assert successor.poll_feed("job_sessions") == 0  # no bootstrap again, no recount
    sample = exporter.registry.get_sample_value(
        "veeam_em_backup_job_sessions_finished_total",
        {
            "server": "em01",
            "backup_server": "vbr01.corp.local",
            "job_name": "Job A",
            "job_type": "Backup",
            "result": "Failed",
            "retry": "false",
        },
    )
    assert sample == 1
    assert 'CreationTime>="2026-06-08' not in urllib.parse.unquote(em.requests[-2])


def test_the_job_feeds_thread_waits_for_an_accepted_logon() -> None:
    em = JobEM(jobs=[Job(guid(1), "Job A", T0 - 60, ended=T0)])
    rig = Rig(em)
    refused = LogonRefused("logon refused: HTTP 401")
    rig.system_answers = [refused, refused, refused]
    # Two refusals by hand; the thread's first poll is the third.
    assert not rig.poller.poll_once()
    assert not rig.poller.poll_once()
    rig.poller.start()
    try:
        assert wait_for(lambda: rig.poller.logon_suspended_until is not None, timeout=30)
        assert em.requests == []  # three refused logons in all, none of them the job feed's
        assert rig.value("veeam_em_job_sessions_poll_errors_total", reason="auth") == 0
    finally:
        rig.poller.stop(timeout=2.0)


# --- rendering --------------------------------------------------------------------------------


def test_the_families_are_reused_until_a_poll_staleness_or_a_new_secret_changes_them() -> None:
    from exporter.jobsessions.collector import JobSessionCollector
    from exporter.jobsessions.feed import JobSessionsFeed as FeedType
    from exporter.redact import register_credentials

    em = JobEM(jobs=[Job(guid(n), "Job A", T0 - 3600 - n, ended=T0 - n) for n in range(3)])
    rig = Rig(em)
    assert rig.jobs()
    feed = rig.poller.feed("job_sessions")
    assert isinstance(feed, FeedType)
    collector = JobSessionCollector(lambda: [feed.state], clock=lambda: rig.now)
    first = list(collector.collect())
    assert [m.name for m in first if m.name == "veeam_em_backup_job_last_result"]
    # The same state: the very same objects, so their formatted text is reused.
    again = list(collector.collect())
    assert len(again) == len(first) and all(a is b for a, b in zip(again, first, strict=True))
    # A new poll swaps the state: new families.
    assert rig.jobs(T0 + 300)
    polled = list(collector.collect())
    assert not any(a is b for a, b in zip(polled, first, strict=False))
    # A secret learnt since may be in a label: rendered again, redacted.
    register_credentials("CORP\\svc-render", "Render-S3cret-Pa55")
    redacted = list(collector.collect())
    assert not any(a is b for a, b in zip(redacted, polled, strict=False))
    # Past stale_after the job gauges go, whatever the state.
    rig.now = T0 + 300 + feed.state.stale_after + 1
    stale = {m.name for m in collector.collect() if m.samples}
    assert "veeam_em_backup_job_last_result" not in stale
    assert "veeam_em_backup_job_sessions_finished" in stale
    assert "veeam_em_backup_job_last_result" in {m.name for m in polled if m.samples}
