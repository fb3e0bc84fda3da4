"""The exporter as a process: start it, read its log, sample /proc, scrape it, stop it."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.soak import ROOT

_LISTENING = re.compile(r"msg=listening\b.*?\baddress=(\S+)")


@dataclass(frozen=True)
class Sample:
    """One reading of the exporter's resources."""

    at: float  # time.monotonic()
    rss_kib: int
    fds: int
    threads: int


def sample(pid: int) -> Sample:
    rss = threads = -1
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name == "VmRSS":
                rss = int(value.split()[0])
            elif name == "Threads":
                threads = int(value)
    return Sample(time.monotonic(), rss, len(os.listdir(f"/proc/{pid}/fd")), threads)


def listen_overflows() -> int | None:
    """TcpExt ListenOverflows of this network namespace: connections a full accept queue
    dropped (any process's, so read it across a phase only this soak loads)."""
    try:
        with open("/proc/net/netstat", encoding="ascii") as netstat:
            lines = [line.split() for line in netstat if line.startswith("TcpExt:")]
    except OSError:
        return None
    if len(lines) != 2 or "ListenOverflows" not in lines[0]:
        return None
    return int(lines[1][lines[0].index("ListenOverflows")])


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


class ExporterUnderTest:
    """The launcher in its own process, its output kept (whole lines, counted by level)."""

    def __init__(self, config: Path, poll_interval: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VEEAM_EM_")}
        # Our own interpreter and fixed arguments: nothing here comes from outside.
        self.proc = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "bench.soak.launcher",
                f"--soak.poll-interval={poll_interval}",
                f"--config.file={config}",
                "--web.listen-address=127.0.0.1:0",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines = 0
        self.by_level: dict[str, int] = {}
        self.notable: list[str] = []  # errors and anything that is not a log line
        self.address: str | None = None
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, name="exporter-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            self.lines += 1
            level = re.search(r"\blevel=(\w+)", line)
            name = level.group(1) if level else "other"
            self.by_level[name] = self.by_level.get(name, 0) + 1
            if name in ("error", "other") and len(self.notable) < 50:
                self.notable.append(line)
            found = _LISTENING.search(line)
            if found and self.address is None:
                self.address = found.group(1)
                self._listening.set()
        self._listening.set()

    def base_url(self, timeout: float = 20.0) -> str:
        if not self._listening.wait(timeout) or self.address is None:
            raise RuntimeError(f"the exporter did not start: {self.notable[-5:]}")
        return "http://" + self.address

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and the exit code; killed (None) if it does not stop in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5.0)
            code = None
        self._reader.join(5.0)
        return code
