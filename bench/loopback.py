"""The whole poll over loopback HTTP with gzip, against a plain read of the same answer.

``python -m bench.loopback serve FILE`` is a minimal EM in its own process (so that serving
costs the measured process nothing): logon, one gzip-compressed answer read from FILE, logout.
``python -m bench.loopback NAME PORT`` runs one contestant against it and prints JSON rows:

- ``plain``: a plain streaming GET (http.client), gunzip (gzip.GzipFile over the response)
  and bare iterparse with clear(), as bench.contestants' floor reads the bytes.
- ``client``: the exporter's EM client (logon, the streamed GET with every bound it keeps),
  its body handed to the exporter's parse and build: the baseline poll, then the same answer
  again, the steady poll.
- ``drain-plain``, ``drain-client``, ``drain-buffered``: the body read and thrown away, 64 KiB
  at a time as the parser reads it: plain, through the client, and through the client as it
  read before (an io.BufferedReader over the body), to show what the client itself costs.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO, ClassVar, Final, cast

from lxml import etree

from bench import memory, ours
from bench.answers import TAKEN_AT
from bench.contestants import Row
from exporter.config import ServerConfig
from exporter.emclient import EMClient

TOKEN = "YmVuY2gtdG9rZW4tbm90LWEtc2VjcmV0"  # noqa: S105 - the bench EM's own, on loopback
USERNAME = "CORP\\bench"
PASSWORD = "bench-Pa55word"  # noqa: S105
_READ: Final = 64 * 1024  # what the parser asks for at each read
_SESSION_ID = "0b6e3f0e-5a58-4c1c-9d6f-1f1c0d9e2a77"
_LOGON = (
    '<LogonSession xmlns="http://www.veeam.com/ent/v1.0" Type="LogonSession">'
    f"<UserName>{USERNAME}</UserName><SessionId>{_SESSION_ID}</SessionId></LogonSession>"
).encode()


class _EM(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answer: ClassVar[bytes] = b""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_POST(self) -> None:
        self._send(201, _LOGON, {"X-RestSvcSessionId": TOKEN, "Content-Type": "application/xml"})

    def do_GET(self) -> None:
        if self.headers.get("X-RestSvcSessionId") != TOKEN:
            self._send(401, b"", {})
            return
        self._send(
            200,
            self.answer,
            {"Content-Type": "application/xml; charset=utf-8", "Content-Encoding": "gzip"},
        )

    def do_DELETE(self) -> None:
        self._send(204, b"", {})


def serve(path: Path) -> None:
    """Serve until stdin closes; the port goes to stdout first."""
    _EM.answer = path.read_bytes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EM)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


# --- the contestants --------------------------------------------------------------------------


def _get(port: int) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(
        "GET",
        "/api/systemSessions?format=Entity",
        headers={"Accept-Encoding": "gzip", "X-RestSvcSessionId": TOKEN},
    )
    return connection, connection.getresponse()


def plain(port: int) -> int:
    connection, response = _get(port)
    for _, element in etree.iterparse(gzip.GzipFile(fileobj=response)):
        element.clear()
    connection.close()
    return -1


def _drain(body: BinaryIO) -> int:
    # As the parser reads.
    while body.read(_READ):
        pass
    return -1


def drain_plain(port: int) -> int:
    connection, response = _get(port)
    _drain(cast(BinaryIO, gzip.GzipFile(fileobj=response)))
    connection.close()
    return -1


def _client(port: int) -> EMClient:
    server = ServerConfig(
        name="bench",
        url=f"http://127.0.0.1:{port}",
        username=USERNAME,
        password=PASSWORD,
        timeout=120.0,
    )
    client = EMClient(server)
    # The logon, so that every measured poll is one with a token, as most polls are.
    client.fetch_sessions(lambda body: body.read(1))
    return client


def _timed(row: str, run: Callable[[], int]) -> Row:
    baseline = memory.settle()
    started = time.perf_counter()
    sessions = run()
    seconds = time.perf_counter() - started
    return Row(row, seconds, max(0, memory.peak_kib() - baseline), sessions)


def _polls(port: int) -> list[Row]:
    ledger = ours.new_ledger()
    taken_at = TAKEN_AT.timestamp()

    def consume(body: BinaryIO) -> int:
        return ours.sessions_in(ours.poll(body, "xml", ledger, taken_at=taken_at))

    with _client(port) as client:
        return [
            _timed(row, lambda: client.fetch_sessions(consume)) for row in ("baseline", "steady")
        ]


def _drains(port: int, name: str) -> list[Row]:
    with _client(port) as client:
        if name == "drain-client":
            return [_timed(name, lambda: client.fetch_sessions(_drain))]
        # How the body was read before: through a buffered reader over Body.readinto.
        return [
            _timed(
                name,
                lambda: client.fetch_sessions(
                    lambda body: _drain(
                        cast(BinaryIO, io.BufferedReader(cast(io.RawIOBase, body), _READ))
                    )
                ),
            )
        ]


def run(name: str, port: int) -> list[Row]:
    if name == "plain":
        return [_timed("plain", lambda: plain(port))]
    if name == "drain-plain":
        return [_timed(name, lambda: drain_plain(port))]
    if name.startswith("drain-"):
        return _drains(port, name)
    return _polls(port)


def main(argv: list[str]) -> int:
    if argv[0] == "serve":
        serve(Path(argv[1]))
        return 0
    for row in run(argv[0], int(argv[1])):
        print(json.dumps(asdict(row)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
