"""HTTP endpoints over real sockets: landing page, telemetry, health, readiness, negotiation."""

from __future__ import annotations

import gzip
import io
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from wsgiref.types import StartResponse

import pytest
import requests
from fakes import Answer, ScriptedSource

from exporter.app import Exporter
from exporter.config import Config, ServerConfig
from exporter.poller import SessionSource
from exporter.reasons import LogonRefused, PollError
from exporter.redact import register_credentials
from exporter.web import (
    DOCS_URL,
    HOME_URL,
    FeedInfo,
    HTTPServer,
    ServerInfo,
    _landing_page,
    make_app,
    parse_listen_address,
)

GOOD = (Path(__file__).parent / "fixtures" / "golden_poll1.xml").read_bytes()
PASSWORD = "Pa55word-never-shown"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":9745", ("", 9745)),
        ("0.0.0.0:9745", ("0.0.0.0", 9745)),  # noqa: S104
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::]:9745", ("::", 9745)),
        ("[::1]:80", ("::1", 80)),
        ("localhost:9745", ("localhost", 9745)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9745", "no port"),
        ("::1:9745", "brackets"),
        (":http", "not a number"),
        (":70000", "out of range"),
    ],
)
def test_bad_listen_addresses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen_address(text)


def _exporter(answers: dict[str, list[Answer]]) -> Exporter:
    def factory(server: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
        return ScriptedSource(answers[server.name], on_logon)

    exporter = Exporter(client_factory=factory)
    exporter.apply(
        Config(
            servers=tuple(
                ServerConfig(
                    name=name,
                    url=f"https://{name}.example.com:9398",
                    username="CORP\\svc",
                    password=PASSWORD,
                )
                for name in answers
            )
        )
    )
    return exporter


@pytest.fixture
def served() -> Iterator[tuple[Exporter, str]]:
    exporter = _exporter(
        {"em01": [GOOD], "em<02>": [LogonRefused("logon refused: HTTP 401 Unauthorized")]}
    )
    http = HTTPServer(make_app(exporter.registry, exporter.server_infos, "/metrics"), "127.0.0.1:0")
    http.start()
    try:
        yield exporter, f"http://127.0.0.1:{http.port}"
    finally:
        http.stop()


def test_ready_only_after_every_server_polled(served: tuple[Exporter, str]) -> None:
    exporter, base = served
    assert requests.get(base + "/-/healthy", timeout=5).status_code == 200
    not_ready = requests.get(base + "/-/ready", timeout=5)
    assert not_ready.status_code == 503
    assert "em01" in not_ready.text
    pollers = exporter.pollers()
    pollers[0].poll_once()
    assert requests.get(base + "/-/ready", timeout=5).status_code == 503
    pollers[1].poll_once()  # a failed poll still counts as polled
    assert requests.get(base + "/-/ready", timeout=5).status_code == 200


def test_metrics_plain_gzip_and_openmetrics(served: tuple[Exporter, str]) -> None:
    exporter, base = served
    for poller in exporter.pollers():
        poller.poll_once()
    plain = requests.get(base + "/metrics", timeout=5, headers={"Accept-Encoding": "identity"})
    assert plain.headers["Content-Type"].startswith("text/plain")
    assert 'veeam_em_up{server="em01"} 1.0' in plain.text
    assert 'veeam_em_up{server="em<02>"} 0.0' in plain.text

    raw = requests.get(
        base + "/metrics", timeout=5, headers={"Accept-Encoding": "gzip"}, stream=True
    )
    assert raw.headers["Content-Encoding"] == "gzip"
    assert b"veeam_em_system_sessions{" in gzip.decompress(raw.raw.read())

    om = requests.get(
        base + "/metrics",
        timeout=5,
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
    )
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")


def test_landing_page_lists_servers_escaped_and_without_secrets(
    served: tuple[Exporter, str],
) -> None:
    exporter, base = served
    for poller in exporter.pollers():
        poller.poll_once()
    page = requests.get(base + "/", timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "em&lt;02&gt;" in page.text and "em<02>" not in page.text
    assert "https://em01.example.com:9398" in page.text
    assert "auth: logon refused" in page.text
    assert 'href="/metrics"' in page.text
    assert PASSWORD not in page.text
    assert requests.get(base + "/nope", timeout=5).status_code == 404


def test_landing_page_shows_a_suspension_of_logons_and_until_when() -> None:
    refused = LogonRefused("logon refused: HTTP 401 Unauthorized")

    def factory(server: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
        return ScriptedSource([refused], on_logon)

    t0 = 1_738_022_400.0  # 2025-01-28T00:00:00Z
    exporter = Exporter(clock=lambda: t0, client_factory=factory)
    exporter.apply(
        Config(
            servers=(
                ServerConfig(
                    name="em01",
                    url="https://em01.example.com:9398",
                    username="CORP\\svc",
                    password=PASSWORD,
                    max_logon_failures=1,
                    logon_retry_after=5400.0,
                ),
            )
        )
    )
    http = HTTPServer(make_app(exporter.registry, exporter.server_infos), "127.0.0.1:0")
    http.start()
    try:
        base = f"http://127.0.0.1:{http.port}"
        (poller,) = exporter.pollers()
        poller.poll_once()
        page = requests.get(base + "/", timeout=5).text
        assert "<td>logons suspended until 2025-01-28 01:30:00 UTC</td>" in page
        assert 'class="status status-suspended"' in page
        assert "auth: logon refused" in page
        exporter.apply(Config(servers=(poller.server,)))  # a reload ends it
        page = requests.get(base + "/", timeout=5).text
        assert "status-suspended" not in page and "until 2025" not in page
        assert 'class="status status-down"' in page
    finally:
        http.stop()


def test_custom_telemetry_path() -> None:
    exporter = _exporter({"em01": []})
    app = make_app(exporter.registry, exporter.server_infos, "/probe")
    http = HTTPServer(app, "127.0.0.1:0")
    http.start()
    try:
        base = f"http://127.0.0.1:{http.port}"
        assert "veeam_em_up" in requests.get(base + "/probe", timeout=5).text
        assert requests.get(base + "/metrics", timeout=5).status_code == 404
    finally:
        http.stop()


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_and_dual_stack_listeners() -> None:
    exporter = _exporter({"em01": []})
    app = make_app(exporter.registry, exporter.server_infos)
    v6 = HTTPServer(app, "[::1]:0")
    v6.start()
    try:
        assert requests.get(f"http://[::1]:{v6.port}/-/healthy", timeout=5).status_code == 200
    finally:
        v6.stop()
    both = HTTPServer(app, ":0")
    both.start()
    try:
        assert requests.get(f"http://[::1]:{both.port}/-/healthy", timeout=5).status_code == 200
        assert requests.get(f"http://127.0.0.1:{both.port}/-/healthy", timeout=5).status_code == 200
    finally:
        both.stop()


def test_port_in_use_is_a_clear_error() -> None:
    exporter = _exporter({"em01": []})
    app = make_app(exporter.registry, exporter.server_infos)
    first = HTTPServer(app, "127.0.0.1:0")
    try:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            HTTPServer(app, f"127.0.0.1:{first.port}")
    finally:
        first.stop()


def _raw_exchange(port: int, *pieces: bytes) -> bytes:
    """Sends the pieces one after the other and returns the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for piece in pieces:
            sock.sendall(piece)
        chunks = []
        for _ in range(1000):  # bounded: the server closes after its answer
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    "pieces",
    [
        [b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"],
        [b"GET /-/heal", b"thy HTTP/1.1\r\nHo", b"st: x\r\n", b"\r", b"\n"],  # end split
        [b"GET /-/healthy HTTP/1.0\n\n"],  # bare line feeds, as http.server accepts
    ],
)
def test_a_request_head_in_any_pieces_is_answered(pieces: list[bytes]) -> None:
    exporter = _exporter({"em01": []})
    http = HTTPServer(make_app(exporter.registry, exporter.server_infos), "127.0.0.1:0")
    http.start()
    try:
        answer = _raw_exchange(http.port, *pieces)
    finally:
        http.stop()
    assert answer.startswith(b"HTTP/1.0 200 ")
    assert answer.endswith(b"\r\n\r\nHealthy\n")


def test_a_request_body_reaches_the_app_whole() -> None:
    def echo(environ: dict[str, object], start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        assert isinstance(stream, io.BufferedIOBase)
        body = stream.read(int(str(environ["CONTENT_LENGTH"])))
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    http = HTTPServer(echo, "127.0.0.1:0")
    http.start()
    try:
        head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
        # Part of the body arrives with the head, the rest after it.
        answer = _raw_exchange(http.port, head + b"0123", b"456789")
    finally:
        http.stop()
    assert answer.startswith(b"HTTP/1.0 200 ")
    assert answer.endswith(b"\r\n\r\n0123456789")


T_PAGE = 1_738_022_400.0  # 2025-01-28T00:00:00Z


def _info(**changes: object) -> ServerInfo:
    fields: dict[str, object] = {
        "name": "em01",
        "url": "https://em01.example.com:9398",
        "polled_once": True,
        "last_poll_at": T_PAGE - 5,
        "last_error": None,
        "up": True,
        "poll_interval": 60.0,
        "last_success_at": T_PAGE - 125,
        "next_poll_at": T_PAGE + 55,
    }
    fields.update(changes)
    return ServerInfo(**fields)  # type: ignore[arg-type]


def _row(info: ServerInfo) -> str:
    page = _landing_page([info], "/metrics", now=T_PAGE).decode()
    servers = page.split("<h2>Other feeds</h2>", 1)[0]
    (row,) = [line for line in servers.split("<tr>") if line.startswith("<td>")]
    return row


@pytest.mark.parametrize(
    ("changes", "status", "colour"),
    [
        ({}, "up", "#2e7d32"),
        ({"up": False, "last_error": "http: HTTP 500"}, "down", "#c62828"),
        ({"up": False, "logon_suspended_until": T_PAGE + 600}, "suspended", "#ef6c00"),
        ({"up": False, "polled_once": False, "last_poll_at": None}, "waiting", "#757575"),
    ],
)
def test_landing_page_status_has_its_class_and_colour(
    changes: dict[str, object], status: str, colour: str
) -> None:
    row = _row(_info(**changes))
    assert f'<span class="status status-{status}" style="background:{colour};' in row
    assert f">{status}</span>" in row


def test_landing_page_shows_last_success_and_how_long_ago() -> None:
    assert "<td>2025-01-27 23:57:55 UTC (2m 5s ago)</td>" in _row(_info())
    assert "<td>never</td>" in _row(_info(last_success_at=None, up=False))
    assert "(3h 0m ago)" in _row(_info(last_success_at=T_PAGE - 3 * 3600 - 30))


def test_landing_page_shows_poll_interval_and_next_poll() -> None:
    row = _row(_info())
    assert "<td>60s</td>" in row
    assert "<td>2025-01-28 00:00:55 UTC</td>" in row
    suspended = _row(_info(logon_suspended_until=T_PAGE + 5400, up=False))
    # While suspended the next poll is the one logon retry, and the suspension says until when.
    assert "<td>2025-01-28 01:30:00 UTC (the one logon retry)</td>" in suspended
    assert "<td>logons suspended until 2025-01-28 01:30:00 UTC</td>" in suspended
    assert "<td>none</td>" in row


def test_landing_page_links_the_documentation_on_the_alerts_home() -> None:
    page = _landing_page([_info()], "/metrics", now=T_PAGE).decode()
    assert f'<a href="{DOCS_URL}">Documentation</a>' in page
    alerts = (Path(__file__).parent.parent / "prometheus" / "alerts.yml").read_text()
    runbooks = [
        line.split("runbook_url:", 1)[1].strip()
        for line in alerts.splitlines()
        if "runbook_url:" in line
    ]
    assert runbooks
    assert all(url.startswith(HOME_URL + "/") for url in runbooks)


def test_landing_page_escapes_and_redacts_what_an_em_said() -> None:
    register_credentials("CORP\\svc", "S3cret-on-the-page")
    info = _info(
        name="em<01>",
        url="https://em01.example.com:9398/?x=<b>",
        up=False,
        last_error="http: <script>alert(1)</script> S3cret-on-the-page",
    )
    page = _landing_page([info], "/metrics", now=T_PAGE).decode()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "em&lt;01&gt;" in page and "?x=&lt;b&gt;" in page
    assert "S3cret-on-the-page" not in page


def _feed(**changes: object) -> FeedInfo:
    fields: dict[str, object] = {
        "name": "job_sessions",
        "up": True,
        "polled_once": True,
        "poll_interval": 300.0,
        "last_success_at": T_PAGE - 65,
        "last_error": None,
        "summary": "412 sessions of 37 jobs",
    }
    fields.update(changes)
    return FeedInfo(**fields)  # type: ignore[arg-type]


def _feed_rows(*infos: ServerInfo) -> list[str]:
    page = _landing_page(list(infos), "/metrics", now=T_PAGE).decode()
    if "<h2>Other feeds</h2>" not in page:
        return []
    feeds = page.split("<h2>Other feeds</h2>", 1)[1]
    return [line for line in feeds.split("<tr>") if line.startswith("<td>")]


def test_landing_page_lists_each_other_feed_under_its_server() -> None:
    assert _feed_rows(_info()) == []  # no other feed: no table
    (row,) = _feed_rows(_info(feeds=(_feed(),)))
    assert row.startswith("<td>em01</td><td>job_sessions</td>")
    assert ">up</span>" in row
    assert "<td>2025-01-27 23:58:55 UTC (1m 5s ago)</td>" in row
    assert "<td>300s</td>" in row
    assert "<td>412 sessions of 37 jobs</td>" in row


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"up": False, "last_error": "auth: HTTP 403"}, "down"),
        ({"up": False, "polled_once": False, "last_success_at": None}, "waiting"),
    ],
)
def test_a_feed_that_failed_or_has_not_polled_says_so_apart_from_its_server(
    changes: dict[str, object], status: str
) -> None:
    (row,) = _feed_rows(_info(feeds=(_feed(**changes),)))
    assert f">{status}</span>" in row
    # The server's own row still says up: a feed's failure is the feed's.
    assert ">up</span>" in _row(_info(feeds=(_feed(**changes),)))
    if changes.get("last_error"):
        assert "<td>auth: HTTP 403</td>" in row
    if changes.get("last_success_at", 0) is None:
        assert "<td>never</td>" in row
        assert "412 sessions" not in row  # nothing read yet: no summary


def test_a_feeds_error_is_escaped_and_redacted() -> None:
    register_credentials(r"CORP\svc", "S3cret-in-a-feed")
    feed = _feed(up=False, last_error="http: <b>S3cret-in-a-feed</b>")
    (row,) = _feed_rows(_info(feeds=(feed,)))
    assert "<b>" not in row and "&lt;b&gt;" in row
    assert "S3cret-in-a-feed" not in row


def test_server_infos_carry_interval_last_success_and_next_poll() -> None:
    t0 = T_PAGE

    def factory(server: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
        return ScriptedSource([GOOD, PollError("http", "HTTP 500")], on_logon)

    exporter = Exporter(clock=lambda: t0, client_factory=factory)
    exporter.apply(
        Config(
            servers=(
                ServerConfig(
                    name="em01",
                    url="https://em01.example.com:9398",
                    username="CORP\\svc",
                    password=PASSWORD,
                    poll_interval=60.0,
                ),
            )
        )
    )
    (before,) = exporter.server_infos()
    assert before.last_success_at is None and before.next_poll_at is None
    assert before.poll_interval == 60.0
    (poller,) = exporter.pollers()
    poller.poll_once()
    (after,) = exporter.server_infos()
    assert after.last_success_at == t0
    assert after.next_poll_at == t0 + 60.0
    poller.poll_once()  # fails: the retry comes sooner, the last success stays
    (failed,) = exporter.server_infos()
    assert failed.last_success_at == t0 and not failed.up
    assert failed.next_poll_at is not None and t0 < failed.next_poll_at < t0 + 60.0
