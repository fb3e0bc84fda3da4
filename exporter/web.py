"""The HTTP side: a WSGI app for ``/``, the telemetry path, ``/-/healthy`` and ``/-/ready``,
and a threaded server that listens on IPv4, IPv6 or both.

The telemetry path is prometheus-client's own WSGI app, which negotiates gzip and
OpenMetrics. Nothing here talks to an EM. With a web config (``--web.config.file``) the server
speaks TLS and the app sits behind basic auth; see exporter.webconfig.
"""

from __future__ import annotations

import contextlib
import errno
import html
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter import __version__, logs
from exporter.webauth import peer_allowed, wrap_app
from exporter.webconfig import TLSServerConfig, WebConfig

_log = logs.get_logger("web")


@dataclass(frozen=True)
class ServerInfo:
    """What the landing page and readiness check need to know about one EM server."""

    name: str
    url: str
    polled_once: bool
    last_poll_at: float | None
    last_error: str | None
    up: bool
    # Set while logons are suspended after refused logons: when the one retry is due.
    logon_suspended_until: float | None = None


def parse_listen_address(text: str) -> tuple[str, int]:
    """``[HOST]:PORT`` -> (host, port); host ``""`` means every interface.

    Accepts ``:9745``, ``0.0.0.0:9745``, ``127.0.0.1:9745``, ``[::]:9745``, ``[::1]:9745``
    and ``localhost:9745``.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"listen address {text!r} has no port; use [HOST]:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"listen address {text!r}: put an IPv6 host in brackets, e.g. [::1]:9745")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"listen address {text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"listen address {text!r}: port out of range")
    return host, port


def make_app(
    registry: CollectorRegistry,
    servers: Callable[[], Sequence[ServerInfo]],
    telemetry_path: str = "/metrics",
    reload: Callable[[], str | None] | None = None,
) -> WSGIApplication:
    """``reload``, when given, serves ``POST /-/reload``; it returns None or an error text."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/-/reload" and reload is not None:
            if environ.get("REQUEST_METHOD") not in ("POST", "PUT"):
                return _text(start_response, "405 Method Not Allowed", "Use POST\n")
            error = reload()
            if error is not None:
                return _text(
                    start_response, "500 Internal Server Error", f"Reload failed: {error}\n"
                )
            return _text(start_response, "200 OK", "Reloaded\n")
        if path == telemetry_path:
            exposition: Iterable[bytes] = metrics_app(environ, start_response)
            return exposition
        if path == "/-/healthy":
            return _text(start_response, "200 OK", "Healthy\n")
        if path == "/-/ready":
            infos = servers()
            waiting = [s.name for s in infos if not s.polled_once]
            if waiting:
                body = "Not ready: waiting for the first poll of " + ", ".join(waiting) + "\n"
                return _text(start_response, "503 Service Unavailable", body)
            return _text(start_response, "200 OK", "Ready\n")
        if path == "/":
            page = _landing_page(servers(), telemetry_path)
            start_response(
                "200 OK",
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))],
            )
            return [page]
        return _text(start_response, "404 Not Found", "Not found\n")

    return app


def _text(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
    )
    return [data]


def _landing_page(servers: Sequence[ServerInfo], telemetry_path: str) -> bytes:
    esc = html.escape
    rows = []
    for s in sorted(servers, key=lambda s: s.name):
        polled = "not yet" if s.last_poll_at is None else _utc(s.last_poll_at)
        status = "up" if s.up else ("waiting" if not s.polled_once else "down")
        if s.logon_suspended_until is not None:
            status = f"logons suspended until {_utc(s.logon_suspended_until)}"
        rows.append(
            f"<tr><td>{esc(s.name)}</td><td>{esc(s.url)}</td><td>{esc(status)}</td>"
            f"<td>{esc(polled)}</td><td>{esc(s.last_error or '')}</td></tr>"
        )
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Veeam EM Exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em 1em;text-align:left}}</style>
</head><body>
<h1>Veeam Backup Enterprise Manager Exporter</h1>
<p>Version {esc(__version__)}</p>
<ul>
<li><a href="{esc(telemetry_path)}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
<h2>Enterprise Manager servers</h2>
<table><tr><th>Name</th><th>URL</th><th>Status</th><th>Last poll</th><th>Last error</th></tr>
{"".join(rows)}
</table></body></html>
"""
    return page.encode()


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


_NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # Access logs would drown the event log; Prometheus records scrape failures itself.
        pass


# Long enough for a slow link, short enough that silent clients do not pile up threads.
TLS_HANDSHAKE_TIMEOUT = 10.0
# What Go's net/http answers, so a scrape configured with the wrong scheme says why it fails.
_PLAIN_HTTP_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
_TLS_HANDSHAKE_RECORD = b"\x16"


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    tls: TLSServerConfig | None = None

    def enable_tls(self, tls: TLSServerConfig) -> None:
        self.tls = tls
        # wsgiref derives wsgi.url_scheme from this.
        self.base_environ["HTTPS"] = "on"

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        # Runs in the connection's own thread, so a slow or silent client delays nobody.
        connection = _tls_accept(request, client_address, self.tls)
        if connection is None:
            return
        try:
            super().finish_request(connection, client_address)
        finally:
            with contextlib.suppress(OSError):
                connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # TLS clients that hang up mid-request raise SSL errors wsgiref does not expect.
        if self.tls is not None and isinstance(sys.exc_info()[1], OSError):
            _log.debug(
                "connection ended", client=str(client_address[0]), err=str(sys.exc_info()[1])
            )
            return
        super().handle_error(request, client_address)


def _tls_accept(
    raw: socket.socket, client_address: Any, tls: TLSServerConfig
) -> ssl.SSLSocket | None:
    """The connection after a successful handshake; None (logged at debug) otherwise."""
    client = str(client_address[0])
    try:
        raw.settimeout(TLS_HANDSHAKE_TIMEOUT)
        first = raw.recv(1, socket.MSG_PEEK)
        if first != _TLS_HANDSHAKE_RECORD:
            if first.isalpha():
                raw.sendall(_PLAIN_HTTP_ANSWER)
                _drain(raw)
            _log.debug("not a TLS client", client=client)
            return None
        connection = tls.context.wrap_socket(raw, server_side=True)
    except OSError as exc:  # ssl.SSLError included; the socket is closed by the caller
        _log.debug("TLS handshake failed", client=client, err=str(exc))
        return None
    if not peer_allowed(connection.getpeercert(), tls.client_allowed_sans):
        _log.debug("client certificate has none of client_allowed_sans", client=client)
        with contextlib.suppress(OSError):
            connection.close()
        return None
    # Back to blocking without a timeout, as for plain HTTP connections.
    connection.settimeout(None)
    return connection


def _drain(raw: socket.socket) -> None:
    """Read what the client sent before hanging up: closing a socket with unread data makes
    the kernel send a reset, which can destroy the answer before the client reads it."""
    raw.shutdown(socket.SHUT_WR)
    raw.settimeout(1.0)
    deadline = time.monotonic() + 1.0
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline and raw.recv(4096):
            pass


class _DualStackServer(_ThreadingWSGIServer):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        # Listen on IPv4 too, as ":PORT" means every interface.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class _IPv6Server(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class HTTPServer:
    """The exporter's own listener, served from a background thread.

    ``web_config`` (from exporter.webconfig.load_web_config) adds TLS, basic auth and extra
    response headers; without it the endpoints are plain HTTP, open to anyone who can connect.
    """

    def __init__(
        self, app: WSGIApplication, listen_address: str, web_config: WebConfig | None = None
    ) -> None:
        if web_config is not None:
            app = wrap_app(app, web_config)
        host, port = parse_listen_address(listen_address)
        server_class: type[_ThreadingWSGIServer]
        if host == "":
            if socket.has_ipv6:
                host, server_class = "::", _DualStackServer
            else:
                host, server_class = "0.0.0.0", _ThreadingWSGIServer  # noqa: S104
        elif ":" in host:
            server_class = _IPv6Server
        else:
            server_class = _ThreadingWSGIServer
        try:
            self._server = make_server(
                host, port, app, server_class=server_class, handler_class=_QuietHandler
            )
        except OSError as exc:
            if server_class is _DualStackServer and exc.errno in _NO_IPV6:
                # No IPv6 on this host after all: fall back to IPv4 only.
                self._server = make_server(
                    "0.0.0.0",  # noqa: S104
                    port,
                    app,
                    server_class=_ThreadingWSGIServer,
                    handler_class=_QuietHandler,
                )
            else:
                raise OSError(
                    exc.errno, f"cannot listen on {listen_address}: {exc.strerror}"
                ) from exc
        if web_config is not None and web_config.tls is not None:
            self._server.enable_tls(web_config.tls)
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        """``https`` when the web config enables TLS, else ``http``."""
        return "https" if self._server.tls is not None else "http"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name="http",
            kwargs={"poll_interval": 0.2},
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            # shutdown() waits for serve_forever() to notice, so only when it runs.
            self._server.shutdown()
            self._thread.join(2.0)
        self._server.server_close()
