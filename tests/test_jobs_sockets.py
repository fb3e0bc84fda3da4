"""Both feeds over real sockets against a small fake EM that serves the documented shapes.

The fake EM (tests/jobem.py) holds a list of sessions and answers the feed's queries by its own
reading of the rules; the counters are checked against a reference computed here from that
list (sessions finished after the baseline, each once), across several polls, with one logon.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import pytest
from jobanswers import Job
from jobem import JobEM, JobEMHandler

from exporter.app import Exporter
from exporter.config import Config, ServerConfig
from exporter.poller import Poller

DAY = 86400.0
T0 = 1781589600.0
STEP = 300.0


def guid(n: int) -> str:
    return f"{n:08x}-5555-4666-8777-888888888888"


@dataclass
class FakeEM:
    em: JobEM
    url: str
    logons: list[str]


@pytest.fixture(params=["xml", "json-v12", "json-v13"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeEM]:
    fmt = "xml" if request.param == "xml" else "json"
    em = JobEM(format=fmt, v13=request.param == "json-v13")
    logons: list[str] = []
    handler = type("Handler", (JobEMHandler,), {"em": em, "logons": logons})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeEM(em, f"http://127.0.0.1:{httpd.server_address[1]}", logons)
    finally:
        httpd.shutdown()
        httpd.server_close()


def exporter_for(fake: FakeEM, now: list[float]) -> tuple[Exporter, Poller]:
    exporter = Exporter(clock=lambda: now[0])
    server = ServerConfig(
        name="em01",
        url=fake.url,
        username="svc",
        password="pa55word",
        format=fake.em.format,  # type: ignore[arg-type]
        timeout=5.0,
    )
    exporter.apply(Config(servers=(server,)))
    (poller,) = exporter.pollers()
    return exporter, poller


def counted(exporter: Exporter) -> Counter[tuple[str, str, str]]:
    found: Counter[tuple[str, str, str]] = Counter()
    for family in exporter.registry.collect():
        if family.name != "veeam_em_backup_job_sessions_finished":
            continue
        for sample in family.samples:
            if sample.value:
                labels = sample.labels
                key = (labels["job_name"], labels["result"], labels["retry"])
                found[key] += int(sample.value)
    return found


def reference(em: JobEM, baseline: set[str]) -> Counter[tuple[str, str, str]]:
    expected: Counter[tuple[str, str, str]] = Counter()
    for job in em.jobs:
        if job.state == "Stopped" and job.guid not in baseline:
            result = job.result if job.result in ("Success", "Warning", "Failed") else "Unknown"
            expected[(job.job_name, result, "true" if job.retry else "false")] += 1
    return expected


def test_counters_match_the_ems_sessions_across_polls_with_one_logon(fake: FakeEM) -> None:
    em = fake.em
    em.put(
        Job(guid(1), "Nightly", T0 - DAY, ended=T0 - DAY + 600),
        Job(guid(2), "Nightly", T0 - 2 * DAY, ended=T0 - 2 * DAY + 500, result="Failed"),
        Job(guid(3), "Copy", T0 - 3 * DAY, job_type="ImmediateBackupCopy").running(0),
        Job(guid(4), "Nightly", T0 - 60).running(10),
    )
    now = [T0]
    exporter, poller = exporter_for(fake, now)
    try:
        assert poller.poll_once()
        assert poller.poll_feed("job_sessions") == 0
        baseline = {job.guid for job in em.jobs if job.state == "Stopped"}
        steps: list[Callable[[], None]] = [
            lambda: em.put(Job(guid(4), "Nightly", T0 - 60).done("Failed", T0 + 100)),
            lambda: em.put(Job(guid(5), "Nightly", T0 + 400, ended=T0 + 500, retry=True)),
            lambda: em.put(
                Job(guid(3), "Copy", T0 - 3 * DAY, job_type="ImmediateBackupCopy").done(
                    "Warning", T0 + 700
                ),
                *(Job(guid(10 + n), f"Job {n}", T0 + 600 + n, ended=T0 + 800) for n in range(30)),
            ),
            lambda: em.put(Job(guid(50), "Nightly", T0 + 900, ended=T0 + 950, result="None")),
        ]
        for index, step in enumerate(steps, start=1):
            step()
            now[0] = T0 + index * STEP
            assert poller.poll_once()
            assert poller.poll_feed("job_sessions") == 0
            assert counted(exporter) == reference(em, baseline), index
        assert len(fake.logons) == 1  # one logon session for both feeds, every poll
        # The copy job left the 48h window while running: its lookup found it finished.
        assert any(path.startswith(f"/api/backupSessions/{guid(3)}") for path in em.requests)
    finally:
        poller.stop(timeout=1.0)


def test_a_failing_job_feed_leaves_the_system_feed_alone(fake: FakeEM) -> None:
    fake.em.faults = {"/api/query": [500] * 10}
    now = [T0]
    exporter, poller = exporter_for(fake, now)
    try:
        assert poller.poll_once()
        assert poller.poll_feed("job_sessions") == 1
        assert poller.poll_once()
        value = exporter.registry.get_sample_value
        assert value("veeam_em_up", {"server": "em01"}) == 1
        assert value("veeam_em_polls_total", {"server": "em01"}) == 2
        for reason in ("connection", "timeout", "tls", "auth", "http", "parse"):
            assert value("veeam_em_poll_errors_total", {"server": "em01", "reason": reason}) == 0
        assert value("veeam_em_job_sessions_up", {"server": "em01"}) == 0
        assert (
            value("veeam_em_job_sessions_poll_errors_total", {"server": "em01", "reason": "http"})
            == 1
        )
        assert len(fake.logons) == 1
    finally:
        poller.stop(timeout=1.0)
