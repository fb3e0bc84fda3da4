"""Shared pieces of the end-to-end tests: an exporter on a real socket, scrapes, a real process.

Nothing here computes what the metrics should be; that is `reference.py`, from the
simulator's records.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from fakes import wait_for
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.config import MIN_POLL_INTERVAL, Config, Format, ServerConfig, TLSConfig
from exporter.poller import Poller
from exporter.simulator import SimulatedEM, openssl_available
from exporter.web import HTTPServer, make_app

# A sample as (name, sorted label pairs): hashable, comparable, readable in a diff.
SampleKey = tuple[str, tuple[tuple[str, str], ...]]

REASONS = ("connection", "timeout", "tls", "auth", "http", "parse")

# The gauges that describe the current answer (and go stale).
SESSION_GAUGES = (
    "veeam_em_system_sessions",
    "veeam_em_system_sessions_canceled",
    "veeam_em_system_session_last_start_timestamp_seconds",
    "veeam_em_system_session_last_end_timestamp_seconds",
    "veeam_em_system_session_last_duration_seconds",
    "veeam_em_system_session_last_result",
    "veeam_em_system_session_last_success_timestamp_seconds",
    "veeam_em_system_session_last_failure_timestamp_seconds",
    "veeam_em_system_session_last_failure_info",
    "veeam_em_system_session_oldest_running_start_timestamp_seconds",
)
FINISHED = "veeam_em_system_sessions_finished_total"
HISTOGRAM = "veeam_em_system_session_duration_seconds"
# The series that are never dropped: counted since start-up.
COUNTERS = (FINISHED, HISTOGRAM + "_bucket", HISTOGRAM + "_count", HISTOGRAM + "_sum")


def key(name: str, **labels: str) -> SampleKey:
    return (name, tuple(sorted(labels.items())))


@dataclass(frozen=True)
class Scrape:
    """One parsed answer of the telemetry path."""

    text: str
    samples: Mapping[SampleKey, float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples: dict[SampleKey, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                k = key(sample.name, **sample.labels)
                assert k not in samples, f"duplicate sample {k}"
                samples[k] = sample.value
        return cls(text, samples)

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels, or None when absent."""
        return self.samples.get(key(name, **labels))

    def select(self, names: str | Collection[str], **labels: str) -> dict[SampleKey, float]:
        """Every sample of these names whose labels include the given ones."""
        wanted = {names} if isinstance(names, str) else set(names)
        return {
            k: v
            for k, v in self.samples.items()
            if k[0] in wanted and all(dict(k[1]).get(n) == v2 for n, v2 in labels.items())
        }

    def errors(self, server: str) -> dict[str, float]:
        """veeam_em_poll_errors_total by reason for one server."""
        return {
            reason: self.value("veeam_em_poll_errors_total", server=server, reason=reason) or 0.0
            for reason in REASONS
        }


def assert_samples_equal(
    actual: Mapping[SampleKey, float], expected: Mapping[SampleKey, float]
) -> None:
    """The same series, and the same values to 10 microseconds (timestamps are ~1.7e9)."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert not missing and not extra, f"missing: {missing}\nunexpected: {extra}"
    wrong = {k: (actual[k], v) for k, v in expected.items() if abs(actual[k] - v) > 1e-5}
    assert not wrong, "(actual, expected):\n" + "\n".join(
        f"{k}: {v}" for k, v in sorted(wrong.items())
    )


def need_openssl() -> None:
    """The TLS simulator runs the openssl program: skip without it, but never in CI."""
    if not openssl_available():
        message = "the openssl command-line program is needed for the TLS simulator"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (and CI=true)")
        pytest.skip(message)


def scrape(base: str) -> Scrape:
    response = requests.get(base + "/metrics", timeout=5)
    assert response.status_code == 200, response.text
    return Scrape.parse(response.text)


def server_config(
    sim: SimulatedEM,
    name: str = "em01",
    *,
    fmt: Format = "xml",
    poll_interval: float = 3600.0,
    stale_after: float = 7200.0,
    timeout: float = 5.0,
    password: str | None = None,
    tls: TLSConfig | None = None,
) -> ServerConfig:
    """A server entry pointing at a simulator, polled as often as the test needs."""
    return ServerConfig(
        name=name,
        url=sim.url,
        username=sim.settings.username,
        password=sim.settings.password if password is None else password,
        poll_interval=poll_interval,
        poll_floor=min(poll_interval, MIN_POLL_INTERVAL),
        stale_after=stale_after,
        timeout=timeout,
        format=fmt,
        tls=tls or TLSConfig(),
    )


class ExporterOnSocket:
    """The real Exporter and its real HTTP server on a free loopback port, in this process.

    Not started, it polls only when a test calls `poll()` (deterministic poll boundaries);
    `start()` runs the pollers' own threads and schedules.
    """

    def __init__(self, servers: Sequence[ServerConfig]) -> None:
        self.exporter = Exporter()
        self.exporter.apply(Config(servers=tuple(servers)))
        self.http = HTTPServer(
            make_app(self.exporter.registry, self.exporter.server_infos), "127.0.0.1:0"
        )
        self.http.start()
        self.base = f"http://127.0.0.1:{self.http.port}"

    def start(self) -> None:
        self.exporter.start()

    def poller(self, name: str = "em01") -> Poller:
        (found,) = [p for p in self.exporter.pollers() if p.server.name == name]
        return found

    def poll(self, name: str = "em01") -> bool:
        """One poll from the test's thread; True if it succeeded."""
        return self.poller(name).poll_once()

    def scrape(self) -> Scrape:
        return scrape(self.base)

    def close(self) -> None:
        self.exporter.stop()
        self.http.stop()


class ExporterProcess:
    """`python -m exporter ARGS` with its log lines collected as they come."""

    def __init__(self, args: Sequence[str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VEEAM_EM_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    @property
    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def wait_for_line(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The first log line matching `pattern`, waiting for it up to `timeout`."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            for line in self.lines:
                match = regex.search(line)
                if match:
                    found.append(match)
                    return True
            return self.proc.poll() is not None

        wait_for(seen, timeout)
        assert found, f"no log line matches {pattern!r}; output so far:\n" + "\n".join(self.lines)
        return found[0]

    def listening_base(self, timeout: float = 15.0) -> str:
        """The exporter's URL, from its `listening` line (the process was given port 0)."""
        match = self.wait_for_line(r"msg=listening\b.*?\baddress=(\S+)", timeout)
        return "http://" + match.group(1)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit code; every log line has been read when this returns."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._reader.join(5.0)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5.0)
        self._reader.join(5.0)


def write_config(tmp_path: Path, sim: SimulatedEM, password: str, timeout: str) -> Path:
    """A one-server config file for the real process, pointing at ``sim``."""
    config = tmp_path / "config.yml"
    config.write_text(
        "poll_interval: 10s\n"
        "servers:\n"
        "  - name: em01\n"
        f"    url: {sim.url}\n"
        f"    username: '{sim.settings.username}'\n"
        f"    password: '{password}'\n"
        f"    timeout: {timeout}\n"
    )
    return config
