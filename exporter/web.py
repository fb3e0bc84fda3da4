"""The HTTP side: a WSGI app for ``/``, the telemetry path, ``/-/healthy`` and ``/-/ready``,
and a threaded server that listens on IPv4, IPv6 or both.

The telemetry path (exporter.exposition) negotiates gzip and OpenMetrics as
prometheus-client's own app does, and formats a metric family again only when it changed.
Nothing here talks to an EM. With a web config (``--web.config.file``) the server
speaks TLS and the app sits behind basic auth; see exporter.webconfig.
"""

from __future__ import annotations

import errno
import html
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry

from exporter import __version__
from exporter.exposition import metrics_app as telemetry_app
from exporter.redact import redact
from exporter.webauth import wrap_app
from exporter.webconfig import WebConfig
from exporter.webserver import LISTEN_BACKLOG, Limits, Listener, wsgi_serve

# The project's home: the runbook links in prometheus/alerts.yml point into it too.
HOME_URL = "https://github.com/veeam-em-exporter/veeam-em-exporter"
DOCS_URL = HOME_URL + "#readme"


@dataclass(frozen=True)
class FeedInfo:
    """One more resource read from a server (its backup job sessions): its own health."""

    name: str  # in configuration terms: job_sessions
    up: bool
    polled_once: bool
    poll_interval: float
    last_success_at: float | None
    last_error: str | None
    summary: str  # what its last successful poll read


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
    poll_interval: float | None = None
    last_success_at: float | None = None  # Unix time of the last successful poll
    # The earliest the next poll may start (jitter may add up to 5% of the delay).
    next_poll_at: float | None = None
    feeds: tuple[FeedInfo, ...] = ()


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
    metrics_app = telemetry_app(registry)

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


# Inline, so the page needs nothing from anywhere else: the status reads at a glance.
_STATUS_STYLE = {
    "up": "background:#2e7d32;color:#fff",
    "down": "background:#c62828;color:#fff",
    "suspended": "background:#ef6c00;color:#fff",
    "waiting": "background:#757575;color:#fff",
}


def _landing_page(
    servers: Sequence[ServerInfo], telemetry_path: str, now: float | None = None
) -> bytes:
    """Every value that may come from an EM (or a configured URL) is redacted, then escaped."""
    at = time.time() if now is None else now
    ordered = sorted(servers, key=lambda s: s.name)
    rows = "".join(_server_row(s, at) for s in ordered)
    feed_rows = "".join(_feed_row(s.name, f, at) for s in ordered for f in s.feeds)
    feeds = (
        ""
        if not feed_rows
        else f"""<h2>Other feeds</h2>
<table><tr><th>Server</th><th>Feed</th><th>Status</th><th>Last success</th><th>Poll interval</th>
<th>Last poll read</th><th>Last error</th></tr>
{feed_rows}
</table>"""
    )
    esc = html.escape
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Veeam EM Exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em 1em;text-align:left}}
.status{{padding:.1em .6em;border-radius:.3em;font-weight:bold}}</style>
</head><body>
<h1>Veeam Backup Enterprise Manager Exporter</h1>
<p>Version {esc(__version__)} &middot; <a href="{esc(DOCS_URL)}">Documentation</a></p>
<ul>
<li><a href="{esc(telemetry_path)}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
<h2>Enterprise Manager servers</h2>
<table><tr><th>Name</th><th>URL</th><th>Status</th><th>Last success</th><th>Poll interval</th>
<th>Next poll</th><th>Suspension</th><th>Last poll</th><th>Last error</th></tr>
{rows}
</table>
{feeds}</body></html>
"""
    return page.encode()


def _status(up: bool, polled_once: bool) -> str:
    if up:
        return "up"
    return "down" if polled_once else "waiting"


def _success(at: float | None, now: float) -> str:
    return "never" if at is None else f"{_utc(at)} ({_ago(now - at)})"


def _row(cells: Sequence[str | None], status: str) -> str:
    """``cells`` redacted already; None is the status badge."""
    out = []
    for cell in cells:
        if cell is None:
            out.append(
                f'<td><span class="status status-{status}" '
                f'style="{_STATUS_STYLE[status]}">{status}</span></td>'
            )
        else:
            out.append(f"<td>{html.escape(cell)}</td>")
    return "<tr>" + "".join(out) + "</tr>"


def _feed_row(server: str, f: FeedInfo, now: float) -> str:
    status = _status(f.up, f.polled_once)
    cells = [
        redact(server),
        f.name,
        None,
        _success(f.last_success_at, now),
        f"{f.poll_interval:g}s",
        redact(f.summary) if f.last_success_at is not None else "",
        redact(f.last_error or ""),
    ]
    return _row(cells, status)


def _server_row(s: ServerInfo, now: float) -> str:
    suspended_now = s.logon_suspended_until is not None
    status = "suspended" if suspended_now else _status(s.up, s.polled_once)
    success = _success(s.last_success_at, now)
    interval = "" if s.poll_interval is None else f"{s.poll_interval:g}s"
    if s.logon_suspended_until is not None:
        next_poll = f"{_utc(s.logon_suspended_until)} (the one logon retry)"
    elif s.next_poll_at is not None:
        next_poll = _utc(s.next_poll_at)
    else:
        next_poll = "under way" if not s.polled_once else ""
    suspended = (
        "none"
        if s.logon_suspended_until is None
        else f"logons suspended until {_utc(s.logon_suspended_until)}"
    )
    polled = "not yet" if s.last_poll_at is None else _utc(s.last_poll_at)
    cells = [
        redact(s.name),
        redact(s.url),
        None,
        success,
        interval,
        next_poll,
        suspended,
        polled,
        redact(s.last_error or ""),
    ]
    return _row(cells, status)


def _ago(seconds: float) -> str:
    if seconds < 0:
        return "in the future"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s ago"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60}s ago"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60}m ago"
    return f"{whole // 86400}d {whole % 86400 // 3600}h ago"


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


_NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)


class _BoundServer(WSGIServer):
    """Binds, listens and builds the WSGI environ; exporter.webserver serves the connections."""

    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG


class _DualStackServer(_BoundServer):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        # Listen on IPv4 too, as ":PORT" means every interface.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class _IPv6Server(_BoundServer):
    address_family = socket.AF_INET6


class HTTPServer:
    """The exporter's own listener, served from background threads (see exporter.webserver:
    a fixed pool of workers, deadlines for slow clients, a cap on open connections).

    ``web_config`` (from exporter.webconfig.load_web_config) adds TLS, basic auth and extra
    response headers; without it the endpoints are plain HTTP, open to anyone who can connect.
    """

    def __init__(
        self,
        app: WSGIApplication,
        listen_address: str,
        web_config: WebConfig | None = None,
        limits: Limits | None = None,
    ) -> None:
        if web_config is not None:
            app = wrap_app(app, web_config)
        host, port = parse_listen_address(listen_address)
        server_class: type[_BoundServer]
        if host == "":
            if socket.has_ipv6:
                host, server_class = "::", _DualStackServer
            else:
                host, server_class = "0.0.0.0", _BoundServer  # noqa: S104
        elif ":" in host:
            server_class = _IPv6Server
        else:
            server_class = _BoundServer
        try:
            self._server = make_server(host, port, app, server_class=server_class)
        except OSError as exc:
            if server_class is _DualStackServer and exc.errno in _NO_IPV6:
                # No IPv6 on this host after all: fall back to IPv4 only.
                self._server = make_server(
                    "0.0.0.0",  # noqa: S104
                    port,
                    app,
                    server_class=_BoundServer,
                )
            else:
                raise OSError(
                    exc.errno, f"cannot listen on {listen_address}: {exc.strerror}"
                ) from exc
        self._tls = web_config.tls if web_config is not None else None
        if self._tls is not None:
            # wsgiref derives wsgi.url_scheme from this.
            self._server.base_environ["HTTPS"] = "on"
        self._listener = Listener(self._server.socket, wsgi_serve(self._server), self._tls, limits)

    @property
    def scheme(self) -> str:
        """``https`` when the web config enables TLS, else ``http``."""
        return "https" if self._tls is not None else "http"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def open_connections(self) -> int:
        return self._listener.open_connections

    @property
    def waiting_connections(self) -> int:
        return self._listener.waiting_connections

    @property
    def shed_connections(self) -> int:
        """Connections closed at once because the connection limit was reached."""
        return self._listener.shed_connections

    @property
    def max_connections(self) -> int:
        return self._listener.max_connections

    def start(self) -> None:
        self._listener.start()

    def stop(self) -> None:
        self._listener.stop()
        self._server.server_close()
