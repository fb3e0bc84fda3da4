"""Test doubles shared by several test modules."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import BinaryIO, ClassVar, TypeVar

import requests

from exporter.reasons import PollError

T = TypeVar("T")

Answer = bytes | PollError


class ScriptedSource:
    """Gives each poll the next scripted answer: a body, or an error to raise."""

    def __init__(self, answers: list[Answer], on_logon: Callable[[], None] = lambda: None) -> None:
        self._answers = answers
        self._on_logon = on_logon
        self._logged_on = False

    def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T:
        answer = self._answers.pop(0)
        if isinstance(answer, PollError):
            raise answer
        if not self._logged_on:
            self._logged_on = True
            self._on_logon()
        return consume(io.BytesIO(answer))

    def close(self, timeout: float = 3.0) -> None:
        self.closed = True

    closed = False


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Wait on a condition with a deadline; True if it came true in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "NDRjZmJkYmUtNWE5NS00MTU2LTg4NjctOTFmMDY5YjdjMmNj"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeEM(BaseHTTPRequestHandler):
    """Just enough of an EM for the process tests: logon, the collection, logout."""

    answers: ClassVar[list[bytes]] = []
    calls: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.calls.append("POST " + self.path)
        self.send_response(201)
        self.send_header("X-RestSvcSessionId", TOKEN)
        body = (
            b'<LogonSession xmlns="http://www.veeam.com/ent/v1.0"><UserName>svc</UserName>'
            b"<SessionId>44cfbdbe-5a95-4156-8867-91f069b7c2cc</SessionId></LogonSession>"
        )
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.calls.append("GET " + self.path)
        body = self.answers[0]
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_DELETE(self) -> None:
        self.calls.append("DELETE " + self.path)
        self.send_response(204)
        self.end_headers()


def run_exporter(config: Path, port: int, *flags: str) -> subprocess.Popen[str]:
    """The real exporter process. Logs at info (a few lines per poll at most), so the
    stderr pipe cannot fill up and block it during a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEEAM_EM_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            "--config.file",
            str(config),
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--log.level",
            "info",
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def ready(base: str) -> bool:
    try:
        return requests.get(base + "/-/ready", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


@contextmanager
def exporter_process(config: Path, port: int, *flags: str) -> Iterator[subprocess.Popen[str]]:
    """The real exporter process, killed on the way out if a test left it running."""
    proc = run_exporter(config, port, *flags)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def stop_process(proc: subprocess.Popen[str], signum: int = signal.SIGTERM) -> str:
    """Signal the process, wait for it to exit, and return what it logged."""
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=10)
    return err
