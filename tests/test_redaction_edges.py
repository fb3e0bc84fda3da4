"""An EM that echoes secrets: none reaches a log line, an error, the landing page or a label.

The EM here echoes the password, the Basic credential (base64) and the logon token and session
id back: in a failed session's message (placed so that the label's 200-character cut would fall
inside a secret), in an error body, and in a malformed answer whose parse error quotes it.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import requests_mock as rm
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.app import Exporter
from exporter.config import Config, ServerConfig
from exporter.web import make_app

BASE = "https://em-echo.example.com:9398"
USER = "CORP\\svc_echo"
PASSWORD = "Echo-Pa55word-9f3k"
TOKEN = "RWNob1Rva2VuR3VpZEFiY2RlZjAxMjM0NTY3"
SESSION_ID = "5d1f6a9e-echo-4c1b-9a7e-0f3b2c1d0e9a"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SECRETS = (PASSWORD, TOKEN, SESSION_ID, BASIC)


def _logon() -> dict[str, Any]:
    body = (
        '<LogonSession xmlns="http://www.veeam.com/ent/v1.0" Type="LogonSession">'
        f"<UserName>{USER}</UserName><SessionId>{SESSION_ID}</SessionId></LogonSession>"
    )
    return {
        "status_code": 201,
        "headers": {"X-RestSvcSessionId": TOKEN, "Content-Type": "application/xml"},
        "content": body.encode(),
    }


def _failed_session(message: str) -> bytes:
    return (
        '<SystemSessions xmlns="http://www.veeam.com/ent/v1.0">'
        '<Sessions UID="urn:veeam:SystemSession:echo-1"><SessionType>CollectJob</SessionType>'
        "<CreationTimeUTC>2026-12-01T10:00:00Z</CreationTimeUTC>"
        "<EndTimeUTC>2026-12-01T10:05:00Z</EndTimeUTC><State>Failed</State>"
        f"<Result><Result>Failed</Result><Message>{message}</Message>"
        "<IsCanceled>false</IsCanceled></Result></Sessions></SystemSessions>"
    ).encode()


def _assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (where, secret)
        # Not even the part of one that a cut would leave.
        assert secret[:8] not in text, (where, secret[:8])


def _page(exporter: Exporter) -> str:
    app = make_app(exporter.registry, exporter.server_infos, "/metrics")
    status: list[str] = []
    body = b"".join(
        app(
            {"PATH_INFO": "/", "REQUEST_METHOD": "GET", "wsgi.url_scheme": "http"},
            lambda s, h, e=None: status.append(s),  # type: ignore[arg-type]
        )
    )
    assert status == ["200 OK"]
    return body.decode()


def test_echoed_secrets_never_leave_the_process(
    requests_mock: rm.Mocker, stream: io.StringIO
) -> None:
    # The label cut (200) would fall inside the password; then every other secret follows.
    echoed = "x" * 195 + f" {PASSWORD} Authorization: Basic {BASIC} {TOKEN} {SESSION_ID}"
    requests_mock.post(f"{BASE}/api/sessionMngr/?v=latest", **_logon())
    sessions = requests_mock.get(
        f"{BASE}/api/systemSessions?format=Entity",
        [
            {"content": _failed_session(echoed), "headers": {"Content-Type": "application/xml"}},
            {
                "status_code": 500,
                "content": (
                    '<Error xmlns="http://www.veeam.com/ent/v1.0" StatusCode="500" Message="'
                    f"failed for {USER}:{PASSWORD} with {TOKEN} ({BASIC}) "
                    f'session {SESSION_ID}"/>'
                ).encode(),
                "headers": {"Content-Type": "application/xml"},
            },
            # A tag named after the token: the XML error quotes tag names.
            {
                "content": f"<SystemSessions><{TOKEN}></SystemSessions>".encode(),
                "headers": {"Content-Type": "application/xml"},
            },
        ],
    )
    requests_mock.delete(f"{BASE}/api/logonSessions/{SESSION_ID}", status_code=204)
    exporter = Exporter()
    exporter.apply(
        Config(servers=(ServerConfig(name="em-echo", url=BASE, username=USER, password=PASSWORD),))
    )
    (poller,) = exporter.pollers()

    assert poller.poll_once()
    text = generate_latest(exporter.registry).decode()
    # Redacted first, then cut to the label's 200 code points.
    shown = ("x" * 195 + " <redacted>")[:200]
    assert f'veeam_em_system_session_last_failure_info{{message="{shown}"' in text
    _assert_clean(text, "metrics")
    _assert_clean(generate_openmetrics(exporter.registry).decode(), "openmetrics")  # type: ignore[no-untyped-call]

    assert not poller.poll_once()  # the error body
    assert poller.status.last_error is not None
    _assert_clean(poller.status.last_error, "last_error after HTTP 500")
    _assert_clean(_page(exporter), "landing page after HTTP 500")

    assert not poller.poll_once()  # the malformed answer
    assert poller.status.last_error is not None and poller.status.last_error.startswith("parse")
    _assert_clean(poller.status.last_error, "last_error after a parse error")
    _assert_clean(_page(exporter), "landing page after a parse error")
    _assert_clean(generate_latest(exporter.registry).decode(), "metrics at the end")

    exporter.stop()
    assert sessions.call_count == 3
    assert "logged out" in stream.getvalue()
    _assert_clean(stream.getvalue(), "log")
