"""A wrong password against the simulated EM: the exporter stops logging on after
max_logon_failures refused logons, so the account cannot be locked, and resumes when the
password file gets the right password or the configuration is reloaded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from fakes import wait_for

from exporter.app import Exporter
from exporter.config import Config, ServerConfig
from exporter.web import HTTPServer, make_app

from .conftest import MakeExporter, MakeSim
from .helpers import scrape, server_config

pytestmark = pytest.mark.integration


def wrong_password_server(sim_config: ServerConfig, password_file: Path) -> ServerConfig:
    password_file.write_text("not-the-password\n")
    return replace(
        sim_config,
        password="not-the-password",
        password_file=str(password_file),
        max_logon_failures=3,
        logon_retry_after=3600.0,
    )


def test_polls_driven_one_by_one(
    make_sim: MakeSim, make_exporter: MakeExporter, tmp_path: Path
) -> None:
    sim = make_sim()
    secret = tmp_path / "em01.password"
    server = wrong_password_server(server_config(sim), secret)
    exporter = make_exporter([server])

    for _ in range(12):  # what the poller's thread does once per interval
        assert not exporter.poll()
    assert sim.stats.failed_logons == 3
    assert sim.stats.logons == 0
    result = exporter.scrape()
    assert result.value("veeam_em_logon_suspended", server="em01") == 1
    assert result.value("veeam_em_up", server="em01") == 0
    assert result.value("veeam_em_polls_total", server="em01") == 3
    assert result.value("veeam_em_poll_errors_total", server="em01", reason="auth") == 3
    page = requests.get(exporter.base + "/", timeout=5).text
    assert "logons suspended until " in page
    assert "not-the-password" not in page

    # A reload ends the suspension; the password is unchanged, so one attempt suspends again.
    exporter.exporter.apply(Config(servers=(server,)))
    assert exporter.scrape().value("veeam_em_logon_suspended", server="em01") == 0
    for _ in range(5):
        exporter.poll()
    assert sim.stats.failed_logons == 4
    assert exporter.scrape().value("veeam_em_logon_suspended", server="em01") == 1

    # The right password in the password file: noticed at the next poll, which logs on.
    secret.write_text(sim.settings.password + "\n")
    assert exporter.poll()
    assert sim.stats.logons == 1
    assert sim.stats.failed_logons == 4
    result = exporter.scrape()
    assert result.value("veeam_em_logon_suspended", server="em01") == 0
    assert result.value("veeam_em_up", server="em01") == 1
    assert "logons suspended" not in requests.get(exporter.base + "/", timeout=5).text


class PollerWakes:
    """The exporter's clock, counting the readings the poller thread takes: while logons
    are suspended it reads the clock each time it wakes, and does nothing else."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def __call__(self) -> float:
        if threading.current_thread().name.startswith("poller-"):
            with self._lock:
                self._count += 1
        return time.time()

    @property
    def count(self) -> int:
        with self._lock:
            return self._count


@pytest.fixture
def threaded() -> Iterator[list[Exporter]]:
    made: list[Exporter] = []
    yield made
    for exporter in made:
        exporter.stop()


def test_the_polling_thread_over_many_intervals(
    make_sim: MakeSim, tmp_path: Path, threaded: list[Exporter]
) -> None:
    sim = make_sim()
    secret = tmp_path / "em01.password"
    server = wrong_password_server(server_config(sim, poll_interval=0.05, stale_after=1.0), secret)
    wakes = PollerWakes()
    exporter = Exporter(clock=wakes)
    threaded.append(exporter)
    exporter.apply(Config(servers=(server,)))
    http = HTTPServer(make_app(exporter.registry, exporter.server_infos), "127.0.0.1:0")
    http.start()
    try:
        base = f"http://127.0.0.1:{http.port}"
        exporter.start()

        def gauge(name: str) -> float | None:
            return scrape(base).value(name, server="em01")

        assert wait_for(lambda: gauge("veeam_em_logon_suspended") == 1, timeout=10)
        suspended_at = wakes.count
        # Ten more wakes at least (two clock readings each), an interval apart: no logon.
        assert wait_for(lambda: wakes.count >= suspended_at + 20, timeout=10)
        assert sim.stats.failed_logons == 3
        assert gauge("veeam_em_polls_total") == 3

        secret.write_text(sim.settings.password)
        assert wait_for(lambda: gauge("veeam_em_up") == 1, timeout=10)
        assert gauge("veeam_em_logon_suspended") == 0
        assert sim.stats.failed_logons == 3
        assert sim.stats.logons == 1
    finally:
        http.stop()
