"""The job-session exposition for a fixed job history and clock, pinned in tests/golden/jobs.prom.

em01 (XML) starts with a week of history (the baseline), then sees runs finish over two more
polls: a failure and its successful retry, a copy parent and its worker, a session that finished
after leaving the window (found by its lookup), an Unknown result, a duplicate and an unreadable
entry. em02 (JSON, v13 casing) has an hourly job whose window holds more than max_pages x
page_size sessions (the query is cut and counted) and fails its last poll (the gauges stay,
within stale_after). em03 has the feed disabled: no job series at all.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_jobs_golden.py``
and review the diff.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from jobanswers import Job, xml_page
from jobem import SYSTEM_SESSIONS, SYSTEM_SESSIONS_JSON, JobEM, JobSource
from prometheus_client import CollectorRegistry, generate_latest

from exporter.app import Exporter
from exporter.config import Config, JobSessionsConfig, ServerConfig
from exporter.feed import Feed
from exporter.jobsessions.feed import JOB_SESSIONS
from exporter.poller import SessionSource

GOLDEN = Path(__file__).parent / "golden" / "jobs.prom"
DAY = 86400.0
T_POLL1 = 1781589600.0  # 2026-06-16T06:00:00Z
T_POLL2 = T_POLL1 + 300
T_POLL3 = T_POLL2 + 300
T_SCRAPE = T_POLL3 + 60
VBR1 = ("6745b6a5-7e44-4d21-9a3b-4e2ec5c4cf7c", "vbr01.corp.local")
VBR2 = ("3eb3d903-fb0b-4ddd-bde9-49d182aeeb0c", "")  # no name: the GUID is the label


def guid(n: int) -> str:
    return f"{n:08x}-1111-4222-8333-444444444444"


def _server(name: str, fmt: str = "xml", **jobs: object) -> ServerConfig:
    return ServerConfig(
        name=name,
        url=f"https://{name}.example.com:9398",
        username="svc",
        password="s3cret-password",
        format=fmt,  # type: ignore[arg-type]
        job_sessions=JobSessionsConfig(**jobs),  # type: ignore[arg-type]
    )


def em01_history() -> JobEM:
    t = T_POLL1
    return JobEM(
        jobs=[
            Job(guid(1), "Backup Job 1", t - 2 * DAY, ended=t - 2 * DAY + 1200, result="Failed"),
            Job(guid(2), "Backup Job 1", t - DAY, ended=t - DAY + 900),
            Job(guid(3), "Weekly Full", t - 6 * DAY, ended=t - 6 * DAY + 7200, result="Warning"),
            Job(guid(4), "Backup Job 1", t - 120).running(progress=35),
            Job(guid(5), "Copy Job", t - 3 * DAY, job_type="ImmediateBackupCopy").running(0),
            Job(guid(6), "NAS Shares", t - 3600, ended=t - 600, job_type="NasBackup", server=VBR2),
        ]
    )


def em01_poll2(em: JobEM) -> None:
    t = T_POLL1
    em.put(
        Job(guid(4), "Backup Job 1", t - 120).done("Failed", t + 60),
        Job(guid(7), "Backup Job 1", t + 120, ended=t + 200, retry=True),
        Job(
            guid(8),
            "Copy Job\\Backup Job 1",
            t + 30,
            ended=t + 90,
            job_type="ImmediateBackupCopyWorker",
        ),
    )


def em01_poll3(em: JobEM) -> None:
    t = T_POLL1
    # The copy parent finished: it is older than the 48h window, so only its lookup finds it.
    em.put(
        Job(guid(5), "Copy Job", t - 3 * DAY, job_type="ImmediateBackupCopy").done(
            "Success", t + 400
        ),
        Job(guid(9), "NAS Shares", t + 300, ended=t + 420, job_type="NasBackup", server=VBR2).done(
            "None", t + 420
        ),
    )
    duplicate = Job(guid(7), "Backup Job 1", t + 120, ended=t + 200, retry=True)
    unreadable = Job(guid(10), "", t + 500, ended=t + 510)
    original = em.jobs

    def page(path: str) -> tuple[int, bytes] | None:
        if "CreationTime%3E%3D" not in path:
            return None
        window = sorted(
            [j for j in original if j.created >= T_POLL3 - 2 * DAY], key=lambda j: -j.created
        )
        return 200, xml_page([*window, duplicate, unreadable])

    em.intercept = page


def em02_history() -> JobEM:
    t = T_POLL1
    hourly = [
        Job(guid(100 + n), "SQL Logs", t - 3600 * (n + 1), ended=t - 3600 * (n + 1) + 40)
        for n in range(70)
    ]
    return JobEM(format="json", v13=True, jobs=hourly)


def exposition() -> str:
    ems = {"em01": em01_history(), "em02": em02_history(), "em03": JobEM()}
    now = [T_POLL1]
    ticks = iter(float(i) * 0.25 for i in range(1000))

    def factory(server: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
        em = ems[server.name]
        system = SYSTEM_SESSIONS_JSON if em.format == "json" else SYSTEM_SESSIONS
        return JobSource(em, lambda: system, on_logon)

    exporter = Exporter(clock=lambda: now[0], monotonic=lambda: next(ticks), client_factory=factory)
    exporter.apply(
        Config(
            servers=(
                _server("em01"),
                _server("em02", "json", page_size=50, max_pages=1),
                _server("em03", enabled=False),
            )
        )
    )
    pollers = {p.server.name: p for p in exporter.pollers()}

    def poll(name: str) -> None:
        pollers[name].poll_once()
        pollers[name].poll_feed("job_sessions")

    poll("em01")
    poll("em02")
    pollers["em03"].poll_once()
    now[0] = T_POLL2
    em01_poll2(ems["em01"])
    poll("em01")
    ems["em02"].faults = {"/api/query": [503]}
    poll("em02")
    now[0] = T_POLL3
    em01_poll3(ems["em01"])
    poll("em01")
    now[0] = T_SCRAPE

    def feeds() -> list[Feed]:
        return [f for p in exporter.pollers() if (f := p.feed("job_sessions")) is not None]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(JOB_SESSIONS.renderer(feeds, lambda: now[0]))
    return generate_latest(registry).decode()


def test_exposition_matches_golden_file() -> None:
    text = exposition()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_golden_file_shows_the_rules_it_pins() -> None:
    # Guards against regenerating the golden file from broken code without noticing.
    text = GOLDEN.read_text()
    job1 = 'backup_server="vbr01.corp.local",job_name="Backup Job 1",job_type="Backup"'
    # The baseline is not counted; the running session that failed and its retry are.
    assert (
        f'sessions_finished_total{{{job1},result="Failed",retry="false",server="em01"}} 1.0' in text
    )
    assert (
        f'sessions_finished_total{{{job1},result="Success",retry="true",server="em01"}} 1.0' in text
    )
    assert (
        f'sessions_finished_total{{{job1},result="Success",retry="false",server="em01"}} 0.0'
        in text
    )
    assert f'veeam_em_backup_job_last_result{{{job1},result="Success",server="em01"}} 1.0' in text
    # The copy parent, found by its lookup after it left the window.
    assert (
        'sessions_finished_total{backup_server="vbr01.corp.local",job_name="Copy Job",'
        'job_type="ImmediateBackupCopy",result="Success",retry="false",server="em01"} 1.0'
    ) in text
    # A backup server without a name is labelled by its GUID; an unknown result is its own.
    assert 'backup_server="3eb3d903-fb0b-4ddd-bde9-49d182aeeb0c"' in text
    assert 'result="Unknown",retry="false",server="em01"} 1.0' in text
    # The weekly job keeps its last result out of the window.
    assert 'job_name="Weekly Full",job_type="Backup",result="Warning",server="em01"} 1.0' in text
    assert 'veeam_em_backup_job_duplicate_uid_total{server="em01"} 1.0' in text
    assert 'veeam_em_backup_job_skipped_sessions_total{server="em01"} 1.0' in text
    # em02: cut at max_pages, then a failed poll with its gauges kept.
    assert 'veeam_em_backup_job_query_truncated_total{query="window",server="em02"} 1.0' in text
    assert 'veeam_em_job_sessions_up{server="em02"} 0.0' in text
    assert 'veeam_em_job_sessions_poll_errors_total{reason="http",server="em02"} 1.0' in text
    assert 'job_name="SQL Logs",job_type="Backup",result="Success",server="em02"} 1.0' in text
    # The histogram has no job_name.
    assert (
        'veeam_em_backup_job_session_duration_seconds_count{backup_server="vbr01.corp.local",'
        'job_type="Backup",server="em01"} 2.0'
    ) in text
    assert 'server="em03"' not in text
