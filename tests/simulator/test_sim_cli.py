"""The standalone `veeam-em-simulator` program."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import requests

from exporter.simulator.cli import build_parser, main, settings_from

ARGS = ["--port", "0", "--history-days", "1", "--no-live"]


class Running:
    """A simulator process whose output lines arrive on a queue."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exporter.simulator", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def line_with(self, fragment: str, timeout: float = 20) -> str:
        while True:
            line = self.lines.get(timeout=timeout)
            if fragment in line:
                return line


@pytest.fixture
def running() -> Iterator[Running]:
    process = Running(*ARGS)
    yield process
    if process.process.poll() is None:
        process.process.kill()
        process.process.wait(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_then_stops_cleanly_on_a_signal(running: Running, sig: signal.Signals) -> None:
    line = running.line_with("serving ")
    url = line.split("serving ", 1)[1].strip()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/api/")
    assert "CORP\\svc_monitoring / demo" in running.line_with("credentials:")
    assert requests.get(url, timeout=10).status_code == 200
    logged_on = requests.post(
        url + "sessionMngr/?v=latest", auth=("CORP\\svc_monitoring", "demo"), timeout=10
    )
    assert logged_on.status_code == 201
    running.process.send_signal(sig)
    assert running.process.wait(timeout=10) == 0
    assert "stopped" in running.line_with("stopped")


def test_refuses_a_remote_address_without_allow_remote(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "0.0.0.0"])  # noqa: S104 - the point of the test
    assert exit_info.value.code == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_refuses_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--fraction-digits", "9"])
    assert exit_info.value.code == 2
    assert "fraction_digits" in capsys.readouterr().err


def test_a_taken_port_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--history-days", "0"]) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_every_setting_has_a_flag() -> None:
    args = build_parser().parse_args(
        [
            "--host", "::1", "--port", "1", "--seed", "5", "--backup-servers", "3",
            "--history-days", "2", "--no-live", "--speed", "60", "--username", "u",
            "--password", "p", "--json-casing", "camel", "--bom", "--result-vocabulary", "short",
            "--fraction-digits", "3", "--references-for-plain-path", "--token-idle-expiry", "60",
            "--latency", "0.5", "--tls", "--hostname-in-hrefs", "em01",
        ]
    )  # fmt: skip
    settings = settings_from(args)
    assert settings.host == "::1" and settings.port == 1 and settings.seed == 5
    assert settings.backup_servers == 3 and settings.history_days == 2 and not settings.live
    assert settings.speed == 60 and settings.username == "u" and settings.password == "p"
    assert settings.json_casing == "camel" and settings.bom
    assert settings.result_vocabulary == "short" and settings.fraction_digits == 3
    assert settings.references_for_plain_path and settings.token_idle_expiry == 60
    assert settings.latency == 0.5 and settings.tls and settings.hostname_in_hrefs == "em01"


def test_every_job_setting_has_a_flag() -> None:
    args = build_parser().parse_args(
        [
            "--jobs", "1000", "--job-runs-per-day", "30", "--job-visibility", "immediate",
            "--em-version", "13", "--query-window-days", "30", "--query-page-size-cap", "250",
            "--query-previous-link", "--query-empty", "null", "--latency-per-mb", "0.2",
        ]
    )  # fmt: skip
    settings = settings_from(args)
    assert settings.jobs == 1000 and settings.job_runs_per_day == 30
    assert settings.job_visibility == "immediate" and settings.em_version == "13"
    assert settings.query_window_days == 30 and settings.query_page_size_cap == 250
    assert settings.query_previous_link and settings.query_empty == "null"
    assert settings.latency_per_mb == 0.2
    assert settings_from(build_parser().parse_args([])).jobs is None  # the demo estate


def test_the_banner_counts_the_jobs(running: Running) -> None:
    line = running.line_with("jobs:")
    assert "15 jobs" in line and "backup job sessions collected" in line
