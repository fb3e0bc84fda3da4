"""The listener under load, over real sockets on 127.0.0.1: idle and slow clients, silent TLS
clients, bursts of connections and clients that never read cost no thread each, end at their
deadlines, and never stop a well-behaved scrape from being answered within a second."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from fakes import wait_for
from prometheus_client import CollectorRegistry, Gauge

from exporter.web import HTTPServer, make_app
from exporter.webconfig import WebConfig, load_web_config
from exporter.webserver import WORKERS, Limits, connection_limit

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

SCRAPE_BOUND = 1.0
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\nUser-Agent: slow\r\n\r\n"
# A TLS record header announcing a ClientHello, and the first byte of it: the rest never comes.
PARTIAL_CLIENT_HELLO = b"\x16\x03\x01\x00\xc8\x01"


def _app() -> Any:
    registry = CollectorRegistry()
    Gauge("load_test_marker", "Present in every scrape.", registry=registry).set(1)
    return make_app(registry, lambda: [])


@contextlib.contextmanager
def _serving(
    limits: Limits | None = None, web_config: WebConfig | None = None, app: Any = None
) -> Iterator[HTTPServer]:
    http = HTTPServer(app or _app(), "127.0.0.1:0", web_config=web_config, limits=limits)
    http.start()
    try:
        yield http
    finally:
        http.stop()


@contextlib.contextmanager
def _clients(port: int, count: int, first_bytes: bytes = b"") -> Iterator[list[socket.socket]]:
    """``count`` connections, each having sent ``first_bytes``; all closed on the way out."""
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            if first_bytes:
                sock.sendall(first_bytes)
            sockets.append(sock)
        yield sockets


def _scrape(url: str, **kwargs: Any) -> tuple[requests.Response, float]:
    started = time.monotonic()
    answer = requests.get(url, timeout=SCRAPE_BOUND, **kwargs)
    return answer, time.monotonic() - started


def _assert_scrape_in_time(url: str, **kwargs: Any) -> None:
    answer, took = _scrape(url, **kwargs)
    assert answer.status_code == 200
    assert "load_test_marker 1.0" in answer.text
    assert took < SCRAPE_BOUND, f"the scrape took {took:.2f} s"


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server hung up (end of stream or reset) before the socket's timeout."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


@contextlib.contextmanager
def _dripping(sockets: Iterable[socket.socket], data: bytes) -> Iterator[Callable[[], int]]:
    """Sends ``data`` to each socket one byte a second; yields how many rounds have gone."""
    stop = threading.Event()
    rounds = [0]
    targets = list(sockets)

    def drip() -> None:
        for index in range(len(data)):
            for sock in targets:
                with contextlib.suppress(OSError):
                    sock.send(data[index : index + 1])
            rounds[0] += 1
            if stop.wait(1.0):
                return

    thread = threading.Thread(target=drip, name="drip", daemon=True)
    thread.start()
    try:
        yield lambda: rounds[0]
    finally:
        stop.set()
        thread.join(5)
        assert not thread.is_alive()


def test_idle_and_slow_clients_do_not_delay_a_scrape() -> None:
    with _serving() as http:
        url = f"http://127.0.0.1:{http.port}/metrics"
        with (
            _clients(http.port, 200) as _idle,
            _clients(http.port, 50) as slow,
            _dripping(slow, REQUEST) as rounds,
        ):
            assert wait_for(lambda: http.open_connections >= 250)
            assert wait_for(lambda: rounds() >= 2)  # the slow ones are mid-request
            for _ in range(5):
                _assert_scrape_in_time(url)
            assert http.open_connections >= 250  # all still held, none shed
            assert http.shed_connections == 0
        assert wait_for(lambda: http.open_connections == 0)


def test_threads_stay_bounded_while_300_connections_are_open() -> None:
    before = threading.active_count()
    with _serving() as http:
        assert threading.active_count() - before <= WORKERS + 1
        with (
            _clients(http.port, 150) as _idle,
            _clients(http.port, 150, REQUEST[:20]) as _partial,
        ):
            assert wait_for(lambda: http.open_connections >= 300)
            assert threading.active_count() - before <= WORKERS + 1
            _assert_scrape_in_time(f"http://127.0.0.1:{http.port}/metrics")
            assert threading.active_count() - before <= WORKERS + 1


def test_a_burst_of_100_connections_waits_in_the_backlog() -> None:
    http = HTTPServer(_app(), "127.0.0.1:0")
    try:
        # Nobody accepts yet: only the kernel's listen backlog holds these.
        with contextlib.ExitStack() as stack:
            sockets = [
                stack.enter_context(socket.create_connection(("127.0.0.1", http.port), timeout=2))
                for _ in range(100)
            ]
            http.start()
            for sock in sockets:
                sock.settimeout(5)
                sock.sendall(REQUEST)
            for sock in sockets:
                with sock.makefile("rb") as answer:
                    assert answer.readline().startswith(b"HTTP/1.0 200 ")
    finally:
        http.stop()


def test_an_unfinished_request_head_is_cut_off_at_its_deadline() -> None:
    with _serving(Limits(request_timeout=0.3)) as http, _clients(http.port, 1) as (sock,):
        sock.sendall(REQUEST[:30])
        sock.settimeout(5)
        started = time.monotonic()
        assert _closed_by_server(sock)
        assert time.monotonic() - started >= 0.2
        assert wait_for(lambda: http.open_connections == 0)


def test_a_request_head_over_64_kib_is_refused() -> None:
    with _serving() as http, _clients(http.port, 1) as (sock,):
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Padding: " + b"a" * 70_000)
        sock.settimeout(5)
        assert sock.recv(100).startswith(b"HTTP/1.0 431 ")


def test_the_oldest_waiting_connection_makes_room_for_a_new_one() -> None:
    with _serving(Limits(max_connections=20)) as http:
        assert http.max_connections == 20
        with _clients(http.port, 20) as idle:
            assert wait_for(lambda: http.open_connections == 20)
            _assert_scrape_in_time(f"http://127.0.0.1:{http.port}/metrics")
            assert http.shed_connections == 1
            idle[0].settimeout(5)
            assert _closed_by_server(idle[0])
            assert http.open_connections <= 20


def test_at_the_limit_with_every_connection_answered_a_new_one_is_closed_at_once() -> None:
    release = threading.Event()

    def slow_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    with (
        _serving(Limits(workers=1, max_connections=2), app=slow_app) as http,
        _clients(http.port, 2, REQUEST) as answered,  # one with the worker, one queued
    ):
        try:
            # Both requests read (one answered, one queued for the worker): none is waiting,
            # so the server has no waiting connection to close for the new one.
            assert wait_for(lambda: http.open_connections == 2 and http.waiting_connections == 0)
            with _clients(http.port, 1) as (extra,):
                extra.settimeout(5)
                assert _closed_by_server(extra)
            assert http.shed_connections == 1
        finally:
            release.set()
        for sock in answered:
            sock.settimeout(5)
            with sock.makefile("rb") as answer:
                assert answer.readline().startswith(b"HTTP/1.0 200 ")


def test_a_client_that_never_reads_its_answer_is_dropped_at_the_deadline() -> None:
    body = b"x" * (32 * 1024 * 1024)  # far more than the socket buffers on both sides hold

    def big_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    with _serving(Limits(workers=1, response_timeout=0.5), app=big_app) as http:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(5)
            sock.connect(("127.0.0.1", http.port))
            sock.sendall(REQUEST)
            assert wait_for(lambda: http.open_connections == 1)
            assert wait_for(lambda: http.open_connections == 0)
        # The only worker is free again.
        assert requests.get(f"http://127.0.0.1:{http.port}/", timeout=5).status_code == 200


def test_the_connection_limit_stays_below_the_file_descriptor_limit() -> None:
    assert connection_limit(20_000) == 1024
    assert connection_limit(1024) == 960
    assert connection_limit(64) == 32
    assert connection_limit(1) == 1
    if resource is not None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            assert connection_limit() < soft
            with _serving() as http:
                assert http.max_connections < soft


# ---------------------------------------------------------------------------------------------
# TLS


@dataclass(frozen=True)
class ServerCert:
    config: WebConfig
    ca: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command line is not installed")
    directory = tmp_path_factory.mktemp("load-tls")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", "server.key", "-out", "server.pem",
        ],
        cwd=directory, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    web_yml = directory / "web.yml"
    web_yml.write_text("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n")
    return ServerCert(load_web_config(web_yml), directory / "server.pem")


@pytest.mark.parametrize("workers", [1, WORKERS])
def test_tls_clients_that_never_finish_a_handshake_do_not_delay_a_scrape(
    tls: ServerCert, workers: int
) -> None:
    with _serving(Limits(workers=workers), web_config=tls.config) as http:
        url = f"https://127.0.0.1:{http.port}/metrics"
        with (
            _clients(http.port, 5) as _silent,
            _clients(http.port, 5, PARTIAL_CLIENT_HELLO) as _stalled,
            _clients(http.port, 40) as slow,
            _dripping(slow, PARTIAL_CLIENT_HELLO) as rounds,
        ):
            assert wait_for(lambda: http.open_connections >= 50)
            assert wait_for(lambda: rounds() >= 2)
            for _ in range(3):
                _assert_scrape_in_time(url, verify=str(tls.ca))
        assert wait_for(lambda: http.open_connections == 0)


def test_an_unfinished_tls_handshake_is_cut_off_at_its_deadline(tls: ServerCert) -> None:
    limits = Limits(handshake_timeout=0.3)
    with (
        _serving(limits, web_config=tls.config) as http,
        _clients(http.port, 1) as (silent,),
        _clients(http.port, 1, PARTIAL_CLIENT_HELLO) as (stalled,),
    ):
        for sock in (silent, stalled):
            sock.settimeout(5)
            assert _closed_by_server(sock)
        assert wait_for(lambda: http.open_connections == 0)
        _assert_scrape_in_time(f"https://127.0.0.1:{http.port}/metrics", verify=str(tls.ca))


# ---------------------------------------------------------------------------------------------
# A process with few file descriptors (in a child process, so the limit stays there)

_LOW_FD_SERVER = """
import resource, sys
from prometheus_client import CollectorRegistry, Gauge
from exporter import logs
from exporter.web import HTTPServer, make_app
from exporter.webserver import Limits
resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
logs.setup("info")
registry = CollectorRegistry()
Gauge("load_test_marker", "Present in every scrape.", registry=registry).set(1)
limits = Limits(max_connections=int(sys.argv[1])) if len(sys.argv) > 1 else None
http = HTTPServer(make_app(registry, lambda: []), "127.0.0.1:0", limits=limits)
http.start()
print(http.port, flush=True)
sys.stdin.read()
http.stop()
"""


@contextlib.contextmanager
def _low_fd_server(*args: str) -> Iterator[tuple[int, int, list[str]]]:
    """A server limited to 128 file descriptors: its port, its process id, and (once the block
    ends) what it logged."""
    process = subprocess.Popen(
        [sys.executable, "-c", _LOW_FD_SERVER, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline()), process.pid, log
        _, err = process.communicate("", timeout=10)
        log.extend(err.splitlines())
        assert process.returncode == 0, err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _closed_now(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


needs_rlimit = pytest.mark.skipif(resource is None, reason="no RLIMIT_NOFILE here")


@needs_rlimit
def test_more_connections_than_file_descriptors_still_let_a_scrape_in() -> None:
    limit = connection_limit(128)
    assert limit < 128
    with _low_fd_server() as (port, _, log), _clients(port, 300) as idle:
        # Each connection over the limit closes the oldest waiting one.
        assert wait_for(lambda: sum(map(_closed_now, idle)) >= 300 - limit)
        _assert_scrape_in_time(f"http://127.0.0.1:{port}/metrics")
    assert any("connection limit reached" in line for line in log)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@needs_rlimit
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc here")
def test_running_out_of_file_descriptors_pauses_accepting_and_recovers() -> None:
    # A limit above what the process can hold: accept() itself fails for lack of descriptors.
    with _low_fd_server("10000") as (port, pid, log):
        # About 120 accepted before accept() fails; the rest wait in the listen backlog.
        with _clients(port, 200):
            # Retrying accept() at once would spin: the backlog keeps the listener readable.
            busy_since = _cpu_seconds(pid)
            assert not wait_for(lambda: _cpu_seconds(pid) - busy_since > 0.5, timeout=1.5)
        url = f"http://127.0.0.1:{port}/metrics"

        def scraped() -> bool:
            with contextlib.suppress(requests.RequestException):
                return requests.get(url, timeout=1).status_code == 200
            return False

        assert wait_for(scraped, timeout=10)
    assert sum("cannot accept connections" in line for line in log) == 1  # not once a retry
