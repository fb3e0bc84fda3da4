"""HTTP/1.1 plumbing: threads, TLS, connection tracking, gzip, truncation, resets, trickles
and bodies made as they are sent."""

from __future__ import annotations

import contextlib
import gzip
import logging
import socket
import ssl
import struct
import sys
import threading
import zlib
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any

from exporter.simulator.api import Api
from exporter.simulator.control import PREFIX, Control, is_control_path
from exporter.simulator.messages import Request, Response

SERVER_HEADER = "Microsoft-HTTPAPI/2.0"
_MAX_BODY = 1 << 20
_log = logging.getLogger("exporter.simulator")


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive connections would otherwise make stop() wait for every client to hang up.
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], api: Api, control: Control, tls: ssl.SSLContext | None
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.api = api
        self.control = control
        self.tls = tls
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, SimRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup of the address; not wanted here.
        TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        connection: socket.socket = request
        if self.tls is not None:
            try:
                request.settimeout(10)
                connection = self.tls.wrap_socket(request, server_side=True)
                connection.settimeout(None)
            except (ssl.SSLError, OSError) as exc:
                # A client that rejects our certificate ends the handshake; that is expected.
                _log.debug("TLS handshake failed: %s", exc)
                request.close()
                return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            SimRequestHandler(connection, client_address, self)
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            if connection is not request:
                _close_quietly(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up early (timeouts, resets we caused) are normal here.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            _log.debug("connection from %s ended: %s", client_address, error)
        else:
            _log.exception("simulator failed on a request from %s", client_address)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def _close_quietly(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.close()


class SimRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = SERVER_HEADER
    timeout = 120  # an idle keep-alive connection is closed after this
    server: SimHTTPServer

    def version_string(self) -> str:
        return SERVER_HEADER

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return
        if length > _MAX_BODY:
            self.send_error(413)
            return
        if self.headers.get("Transfer-Encoding"):
            # Chunked request bodies are not read; the connection cannot be reused after.
            self.close_connection = True
        body = self.rfile.read(length) if length > 0 else b""
        server_host, server_port = self.server.server_address[:2]
        request = Request(
            method=self.command,
            target=self.path,
            headers=self.headers,
            body=body,
            client_host=str(self.client_address[0]),
            scheme="https" if self.server.tls is not None else "http",
            server_host=str(server_host),
            server_port=int(server_port),
        )
        try:
            if is_control_path(request.path):
                response = self.server.control.handle(request)
            else:
                response = self.server.api.handle(request)
        except Exception:
            _log.exception("simulator failed on %s %s", self.command, self.path)
            response = Response(500, b"", None)
        self._send(response, gzip_ok=_accepts_gzip(self.headers.get("Accept-Encoding")))

    def _send(self, response: Response, *, gzip_ok: bool) -> None:
        if response.cut == "reset":
            self._reset()
            return
        if response.stream is not None:
            self._send_stream(response, gzip_ok=gzip_ok and not self.path.startswith(PREFIX))
            return
        if response.trickle > 0:
            self._send_trickle(response, gzip_ok=gzip_ok)
            return
        body = response.body
        headers = list(response.headers)
        if body and gzip_ok and not self.path.startswith(PREFIX):
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers.append(("Content-Encoding", "gzip"))
        self.send_response(response.status)
        for name, value in headers:
            self.send_header(name, value)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        if response.status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD" or response.status == 204:
            return
        if response.cut == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def _send_trickle(self, response: Response, *, gzip_ok: bool) -> None:
        """The answer at `response.trickle` seconds a byte: the body, or the headers of an
        answer without one. A client that hangs up, or stop(), ends it."""
        body = response.body
        headers = list(response.headers)
        if body and gzip_ok:
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers.append(("Content-Encoding", "gzip"))
        if response.content_type:
            headers.append(("Content-Type", response.content_type))
        if response.status != 204:
            headers.append(("Content-Length", str(len(body))))
        status = HTTPStatus(response.status)
        lines = [f"{self.protocol_version} {status.value} {status.phrase}"]
        lines += [f"Server: {SERVER_HEADER}", f"Date: {self.date_time_string()}"]
        lines += [f"{name}: {value}" for name, value in headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.log_request(response.status)
        if self.command == "HEAD" or not body:
            slow, body = head, b""
        else:
            self.wfile.write(head)
            slow = body
        self.close_connection = True
        for index in range(len(slow)):
            self.wfile.write(slow[index : index + 1])
            self.wfile.flush()
            if index + 1 < len(slow) and self.server.api.pause(response.trickle):
                return
        self.close_connection = False

    def _send_stream(self, response: Response, *, gzip_ok: bool) -> None:
        """A body made as it goes: with Content-Length when its size is known, chunked when
        compressing here makes it unknown."""
        assert response.stream is not None
        chunks: Iterator[bytes] = response.stream
        headers = list(response.headers)
        length = response.length
        if gzip_ok and not response.encoded:
            chunks = _gzip_chunks(chunks)
            headers.append(("Content-Encoding", "gzip"))
            length = None
        self.send_response(response.status)
        for name, value in headers:
            self.send_header(name, value)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        for chunk in chunks:
            if self.server.api.pause(0):
                self.close_connection = True
                return
            if not chunk:
                continue
            if length is None:
                self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            else:
                self.wfile.write(chunk)
        if length is None:
            self.wfile.write(b"0\r\n\r\n")

    def _reset(self) -> None:
        """Abort the connection: SO_LINGER with a zero timeout makes close() send RST."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket's file descriptor closes only once the buffered reader lets go of it.
        self.rfile.close()
        _close_quietly(self.connection)


def _gzip_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        yield compressor.compress(chunk)
    yield compressor.flush()


def _accepts_gzip(header: str | None) -> bool:
    if not header:
        return False
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return _quality(params) > 0
    return False


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0
