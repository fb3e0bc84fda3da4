"""Tests for exporter.emclient: logon, token reuse, re-logon, error reasons, TLS, logout."""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import logging
import socket
import ssl
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
import requests
import urllib3
import urllib3.exceptions
from requests_mock import Mocker

from exporter.config import ServerConfig, TLSConfig
from exporter.emclient import EMClient
from exporter.reasons import REASONS, LogonRefused, PollError

BASE = "https://em01.example.com:9398"
LOGON_URL = f"{BASE}/api/sessionMngr/?v=latest"
SESSIONS_URL = f"{BASE}/api/systemSessions?format=Entity"
USERNAME = "CORP\\svc_monitoring"
PASSWORD = "pa55-W0rd!secret"
BASIC = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
SESSION_ID = "44cfbdbe-5a95-4e3b-9c7a-2f1d0c9e8b11"
SESSION_ID_2 = "eb009383-3f37-4b0c-8a43-6c9f3e1d2a77"
# Deliberately not base64(SESSION_ID): proves the logout path comes from the body, not the token.
TOKEN = "dG9rZW4tb25lLW9wYXF1ZQ=="
TOKEN_2 = "dG9rZW4tdHdvLW9wYXF1ZQ=="
SECRETS = (PASSWORD, BASIC, TOKEN, TOKEN_2, SESSION_ID, SESSION_ID_2)
LOGOUT_URL = f"{BASE}/api/logonSessions/{SESSION_ID}"
SESSIONS_XML = b'<SystemSessions xmlns="http://www.veeam.com/ent/v1.0"/>'

SERVER = ServerConfig(
    name="em01", url=BASE, username=USERNAME, password=PASSWORD, timeout=7.0, format="xml"
)


def logon_xml(session_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<LogonSession xmlns="http://www.veeam.com/ent/v1.0" '
        f'Href="{BASE}/api/logonSessions/{session_id}" Type="LogonSession">'
        f'<Links><Link Href="{BASE}/api/logonSessions/{session_id}" Rel="Delete"/></Links>'
        f"<UserName>CORP\\svc_monitoring</UserName><SessionId>{session_id}</SessionId>"
        "</LogonSession>"
    ).encode()


def logon_response(token: str, session_id: str) -> dict[str, Any]:
    return {
        "status_code": 201,
        "headers": {"X-RestSvcSessionId": token, "Content-Type": "application/xml"},
        "content": logon_xml(session_id),
    }


def error_xml(status: int, message: str) -> bytes:
    return (
        f'<Error xmlns="http://www.veeam.com/ent/v1.0" Message="{message}" '
        f'StatusCode="{status}"><FirstChanceExceptionMessage/></Error>'
    ).encode()


def read_all(stream: BinaryIO) -> bytes:
    return stream.read()


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def expect_poll_error(client: EMClient, reason: str) -> PollError:
    """Fetch, expect a PollError of ``reason``, and check it leaks nothing."""
    with pytest.raises(PollError) as info:
        client.fetch_sessions(read_all)
    err = info.value
    assert err.reason == reason, str(err)
    assert_no_secrets(str(err), repr(err), repr(client))
    # Nothing is chained that a traceback printer would show after the error.
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__
    return err


@pytest.fixture(autouse=True)
def _no_ca_bundle_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these replace verify=True; the tests check what the client itself asks for.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    # The real-socket tests talk to 127.0.0.1 directly, never through a proxy.
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def logged_logons() -> list[int]:
    return []


@pytest.fixture
def client(logged_logons: list[int]) -> Iterator[EMClient]:
    em = EMClient(SERVER, on_logon=lambda: logged_logons.append(1))
    yield em
    em.close(timeout=0.5)


def last(matcher: Any) -> Any:
    request = matcher.last_request
    assert request is not None
    return request


def requests_to(requests_mock: Mocker, method: str) -> list[Any]:
    return [r for r in requests_mock.request_history if r.method == method]


# -- logon ------------------------------------------------------------------------------------


def test_logon_and_fetch_request_shape(requests_mock: Mocker, client: EMClient) -> None:
    logon = requests_mock.post(LOGON_URL, complete_qs=True, **logon_response(TOKEN, SESSION_ID))
    fetch = requests_mock.get(SESSIONS_URL, complete_qs=True, content=SESSIONS_XML)

    assert client.fetch_sessions(read_all) == SESSIONS_XML

    post = last(logon)
    assert post.method == "POST"
    assert post.url == LOGON_URL
    assert post.headers["Authorization"] == f"Basic {BASIC}"
    assert post.headers["Accept"] == "application/xml"
    assert post.headers["Accept-Encoding"] == "gzip"
    assert post.headers["Content-Length"] == "0"
    assert not post.body
    assert "X-RestSvcSessionId" not in post.headers

    get = last(fetch)
    assert get.url == SESSIONS_URL
    assert get.headers["X-RestSvcSessionId"] == TOKEN
    assert get.headers["Accept"] == "application/xml"
    assert get.headers["Accept-Encoding"] == "gzip"
    assert "Authorization" not in get.headers
    assert get.stream is True
    assert cast(object, get.timeout) == (7.0, 7.0)
    assert get.verify is True
    assert client.logged_on


@pytest.mark.parametrize("status", [200, 201])
@pytest.mark.parametrize("header", ["x-restsvcsessionid", "X-RESTSVCSESSIONID"])
def test_token_header_any_case_and_200_or_201(
    requests_mock: Mocker, client: EMClient, header: str, status: int
) -> None:
    requests_mock.post(
        LOGON_URL, status_code=status, headers={header: TOKEN}, content=logon_xml(SESSION_ID)
    )
    fetch = requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)

    client.fetch_sessions(read_all)

    assert last(fetch).headers["X-RestSvcSessionId"] == TOKEN


def test_token_from_cookie_when_header_missing(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(
        LOGON_URL,
        status_code=201,
        headers={"Set-Cookie": f"X-RestSvcSessionId={TOKEN}; Path=/api;"},
        content=logon_xml(SESSION_ID),
    )
    fetch = requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)

    client.fetch_sessions(read_all)

    assert last(fetch).headers["X-RestSvcSessionId"] == TOKEN


def test_logon_without_any_token_is_http_error(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(LOGON_URL, status_code=201, content=logon_xml(SESSION_ID))
    fetch = requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)

    err = expect_poll_error(client, "http")

    assert "X-RestSvcSessionId" in str(err)
    assert not fetch.called
    assert not client.logged_on


def test_json_logon_body_with_bom_and_camel_case_session_id(requests_mock: Mocker) -> None:
    body = "\ufeff" + json.dumps({"userName": USERNAME, "sessionId": SESSION_ID, "links": []})
    logon = requests_mock.post(
        LOGON_URL,
        status_code=201,
        headers={"X-RestSvcSessionId": TOKEN, "Content-Type": "application/json"},
        content=body.encode("utf-8"),
    )
    fetch = requests_mock.get(SESSIONS_URL, content=b'{"sessions": []}')
    logout = requests_mock.delete(LOGOUT_URL, status_code=204)
    em = EMClient(replace(SERVER, format="json"))

    assert em.fetch_sessions(read_all) == b'{"sessions": []}'
    em.close()

    assert last(logon).headers["Accept"] == "application/json"
    assert last(fetch).headers["Accept"] == "application/json"
    assert logout.call_count == 1


def test_wrong_password_is_auth(
    requests_mock: Mocker, client: EMClient, logged_logons: list[int]
) -> None:
    requests_mock.post(
        LOGON_URL,
        status_code=401,
        reason="Unauthorized",
        headers={"WWW-Authenticate": "Basic Realm=RestSvc", "Content-Type": "application/xml"},
        content=error_xml(401, "Login failed for user CORP\\svc_monitoring"),
    )
    fetch = requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)

    err = expect_poll_error(client, "auth")

    assert str(err) == (
        "logon refused: HTTP 401 Unauthorized: Login failed for user CORP\\svc_monitoring"
    )
    assert isinstance(err, LogonRefused)  # what the logon suspension counts
    assert not fetch.called
    assert logged_logons == []
    assert not client.logged_on


def test_logon_server_error_is_http(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(LOGON_URL, status_code=500, reason="Internal Server Error")

    err = expect_poll_error(client, "http")

    assert str(err) == "POST /api/sessionMngr/: HTTP 500 Internal Server Error"


def test_em_message_echoing_the_password_is_redacted(
    requests_mock: Mocker, client: EMClient
) -> None:
    requests_mock.post(
        LOGON_URL, status_code=403, content=error_xml(403, f"bad password {PASSWORD}")
    )

    err = expect_poll_error(client, "auth")

    assert "bad password <redacted>" in str(err)
    assert isinstance(err, LogonRefused)


def test_redirect_is_not_followed(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(
        SESSIONS_URL, status_code=302, headers={"Location": "https://elsewhere.example/x"}
    )
    elsewhere = requests_mock.get("https://elsewhere.example/x", content=SESSIONS_XML)

    err = expect_poll_error(client, "http")

    assert "HTTP 302" in str(err)
    assert not elsewhere.called


# -- token reuse and re-logon -----------------------------------------------------------------


def test_token_is_reused_across_fetches(
    requests_mock: Mocker, client: EMClient, logged_logons: list[int]
) -> None:
    logon = requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    fetch = requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)

    for _ in range(3):
        client.fetch_sessions(read_all)

    assert logon.call_count == 1
    assert fetch.call_count == 3
    assert logged_logons == [1]
    assert all(r.headers["X-RestSvcSessionId"] == TOKEN for r in fetch.request_history)


def test_expired_token_means_one_relogon_and_one_retry(
    requests_mock: Mocker, client: EMClient, logged_logons: list[int]
) -> None:
    logon = requests_mock.post(
        LOGON_URL,
        [logon_response(TOKEN, SESSION_ID), logon_response(TOKEN_2, SESSION_ID_2)],
    )
    fetch = requests_mock.get(
        SESSIONS_URL,
        [
            {"content": b"<first/>"},
            {"status_code": 401, "content": error_xml(401, "Session expired")},
            {"content": b"<second/>"},
        ],
    )
    client.fetch_sessions(read_all)

    assert client.fetch_sessions(read_all) == b"<second/>"

    assert logon.call_count == 2
    assert logged_logons == [1, 1]
    tokens = [r.headers["X-RestSvcSessionId"] for r in fetch.request_history]
    assert tokens == [TOKEN, TOKEN, TOKEN_2]
    # A 401 means the EM session is gone already: no pointless DELETE for it.
    assert requests_to(requests_mock, "DELETE") == []


def test_401_again_after_fresh_logon_is_auth(requests_mock: Mocker, client: EMClient) -> None:
    logon = requests_mock.post(
        LOGON_URL,
        [logon_response(TOKEN, SESSION_ID), logon_response(TOKEN_2, SESSION_ID_2)],
    )
    fetch = requests_mock.get(
        SESSIONS_URL, [{"content": SESSIONS_XML}, {"status_code": 401}, {"status_code": 401}]
    )
    client.fetch_sessions(read_all)

    err = expect_poll_error(client, "auth")

    assert str(err) == "GET /api/systemSessions: HTTP 401 Unauthorized again after a fresh logon"
    assert logon.call_count == 2
    assert fetch.call_count == 3
    assert not client.logged_on


def test_403_means_relogon_and_retry_and_ends_the_refused_session(
    requests_mock: Mocker, client: EMClient
) -> None:
    logon = requests_mock.post(
        LOGON_URL,
        [logon_response(TOKEN, SESSION_ID), logon_response(TOKEN_2, SESSION_ID_2)],
    )
    fetch = requests_mock.get(
        SESSIONS_URL, [{"status_code": 403}, {"content": b"<ok/>"}], complete_qs=True
    )
    logout = requests_mock.delete(LOGOUT_URL, status_code=204)

    assert client.fetch_sessions(read_all) == b"<ok/>"

    assert logon.call_count == 2
    tokens = [r.headers["X-RestSvcSessionId"] for r in fetch.request_history]
    assert tokens == [TOKEN, TOKEN_2]
    # After a 403 the EM session is still alive; it is ended rather than left to idle out.
    assert logout.call_count == 1
    assert last(logout).headers["X-RestSvcSessionId"] == TOKEN


def test_403_twice_is_auth(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(
        LOGON_URL,
        [logon_response(TOKEN, SESSION_ID), logon_response(TOKEN_2, SESSION_ID_2)],
    )
    requests_mock.get(SESSIONS_URL, status_code=403, content=error_xml(403, "Access denied"))
    requests_mock.delete(f"{BASE}/api/logonSessions/{SESSION_ID}", status_code=204)
    second_logout = requests_mock.delete(
        f"{BASE}/api/logonSessions/{SESSION_ID_2}", status_code=204
    )

    err = expect_poll_error(client, "auth")

    assert "HTTP 403" in str(err)
    assert not isinstance(err, LogonRefused)  # both logons were accepted
    assert second_logout.call_count == 1
    assert not client.logged_on


# -- HTTP errors ------------------------------------------------------------------------------


def test_500_with_xml_error_body_is_http_with_em_message(
    requests_mock: Mocker, client: EMClient
) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(
        SESSIONS_URL,
        status_code=500,
        reason="Internal Server Error",
        content=error_xml(500, "Object reference not set to an instance of an object."),
    )

    err = expect_poll_error(client, "http")

    assert str(err) == (
        "GET /api/systemSessions: HTTP 500 Internal Server Error: "
        "Object reference not set to an instance of an object."
    )
    # An EM error is not an auth problem: the token stays for the next poll.
    assert client.logged_on


def test_503_without_body_is_http(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, status_code=503, reason="Service Unavailable")

    err = expect_poll_error(client, "http")

    assert str(err) == "GET /api/systemSessions: HTTP 503 Service Unavailable"


@pytest.mark.parametrize("key", ["Message", "message"])
def test_json_error_message_any_case(requests_mock: Mocker, key: str) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(
        SESSIONS_URL,
        status_code=400,
        reason="Bad Request",
        json={key: "Node [root] does not exist.", "StatusCode": 400},
    )
    em = EMClient(replace(SERVER, format="json"))

    err = expect_poll_error(em, "http")

    assert str(err) == "GET /api/systemSessions: HTTP 400 Bad Request: Node [root] does not exist."


def test_error_body_is_read_only_up_to_64_kib(requests_mock: Mocker, client: EMClient) -> None:
    huge = error_xml(500, "x" * 100_000)
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, status_code=500, content=huge)

    err = expect_poll_error(client, "http")

    # The cut-off body is not a readable Error document, so only the status is reported.
    assert str(err) == "GET /api/systemSessions: HTTP 500 Internal Server Error"


# -- request exceptions -----------------------------------------------------------------------


def _ssl_error() -> requests.exceptions.SSLError:
    cause = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"
    )
    cause.verify_message = "self-signed certificate"
    wrapped = urllib3.exceptions.MaxRetryError(
        None,  # type: ignore[arg-type]
        "/api/systemSessions",
        urllib3.exceptions.SSLError(cause),
    )
    return requests.exceptions.SSLError(wrapped)


@pytest.mark.parametrize(
    ("exc", "reason", "detail"),
    [
        (requests.exceptions.ConnectTimeout("boom"), "timeout", "connect timed out after 7s"),
        (requests.exceptions.ReadTimeout("boom"), "timeout", "read timed out after 7s"),
        (
            requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused")),
            "connection",
            "connection refused",
        ),
        (
            requests.exceptions.ConnectionError(ConnectionResetError(104, "reset")),
            "connection",
            "connection reset by peer",
        ),
        (_ssl_error(), "tls", "TLS certificate verification failed: self-signed certificate"),
    ],
)
@pytest.mark.parametrize("failing", ["logon", "fetch"])
def test_request_exceptions_are_classified(
    requests_mock: Mocker,
    client: EMClient,
    exc: Exception,
    reason: str,
    detail: str,
    failing: str,
) -> None:
    if failing == "logon":
        requests_mock.post(LOGON_URL, exc=exc)
        op = "POST /api/sessionMngr/"
    else:
        requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
        requests_mock.get(SESSIONS_URL, exc=exc)
        op = "GET /api/systemSessions"

    err = expect_poll_error(client, reason)

    assert str(err) == f"{op}: {detail}"


def test_dns_failure_is_connection(requests_mock: Mocker, client: EMClient) -> None:
    dns = urllib3.exceptions.NameResolutionError(
        "em01.example.com",
        None,  # type: ignore[arg-type]
        socket.gaierror(-2, "Name or service not known"),
    )
    requests_mock.post(
        LOGON_URL,
        exc=requests.exceptions.ConnectionError(
            urllib3.exceptions.MaxRetryError(None, "/api/sessionMngr/", dns)  # type: ignore[arg-type]
        ),
    )

    err = expect_poll_error(client, "connection")

    assert str(err) == "POST /api/sessionMngr/: name resolution failed"


# -- the body ---------------------------------------------------------------------------------


def test_gzip_body_reaches_consume_decoded(requests_mock: Mocker, client: EMClient) -> None:
    payload = SESSIONS_XML * 1000
    raw = urllib3.HTTPResponse(
        body=io.BytesIO(gzip.compress(payload)),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/xml"},
        status=200,
        preload_content=False,
        decode_content=False,
    )
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, raw=raw)

    assert client.fetch_sessions(read_all) == payload


def test_consume_result_is_returned_and_parser_errors_propagate_unchanged(
    requests_mock: Mocker, client: EMClient
) -> None:
    class ParseError(Exception):
        pass

    boom = ParseError("not a SystemSessions document")
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)

    def consume(stream: BinaryIO) -> int:
        stream.read(5)
        raise boom

    with pytest.raises(ParseError) as info:
        client.fetch_sessions(consume)

    assert info.value is boom
    assert client.fetch_sessions(lambda s: len(s.read())) == len(SESSIONS_XML)


class _FailingBody(io.RawIOBase):
    """A socket file that delivers a few bytes, then fails the way a real one would."""

    def __init__(self, error: OSError) -> None:
        self._error = error
        self._sent = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._sent:
            self._sent = True
            buffer[:5] = b"<Syst"
            return 5
        raise self._error


@pytest.mark.parametrize(
    ("error", "reason", "detail"),
    [
        (TimeoutError("timed out"), "timeout", "reading the body timed out after 7s"),
        (
            ConnectionResetError(104, "Connection reset by peer"),
            "connection",
            "reading the body failed: connection reset by peer",
        ),
    ],
)
def test_socket_errors_while_consuming_are_classified(
    requests_mock: Mocker, client: EMClient, error: OSError, reason: str, detail: str
) -> None:
    raw = urllib3.HTTPResponse(
        body=_FailingBody(error), status=200, preload_content=False, decode_content=False
    )
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, raw=raw)

    err = expect_poll_error(client, reason)

    assert str(err) == f"GET /api/systemSessions: {detail}"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (urllib3.exceptions.ReadTimeoutError(None, None, "Read timed out."), "timeout"),  # type: ignore[arg-type]
        (urllib3.exceptions.ProtocolError("Connection broken"), "connection"),
        (urllib3.exceptions.IncompleteRead(10, 90), "connection"),
        (requests.exceptions.ChunkedEncodingError("broken"), "connection"),
        (ConnectionResetError(104, "reset"), "connection"),
        (urllib3.exceptions.DecodeError("bad gzip"), "parse"),
        # A subclass of urllib3's TimeoutError, yet a refusal.
        (urllib3.exceptions.NewConnectionError(None, "refused"), "connection"),  # type: ignore[arg-type]
    ],
)
def test_io_errors_raised_directly_by_consume_are_classified(
    requests_mock: Mocker, client: EMClient, error: Exception, reason: str
) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)

    def consume(stream: BinaryIO) -> None:
        raise error

    with pytest.raises(PollError) as info:
        client.fetch_sessions(consume)

    assert info.value.reason == reason


# -- logout -----------------------------------------------------------------------------------


def test_close_deletes_the_body_session_id_with_the_token(
    requests_mock: Mocker, client: EMClient
) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    logout = requests_mock.delete(LOGOUT_URL, status_code=204)
    client.fetch_sessions(read_all)

    client.close(timeout=2.0)

    assert logout.call_count == 1
    delete = last(logout)
    assert delete.url == LOGOUT_URL
    assert delete.headers["X-RestSvcSessionId"] == TOKEN
    assert "Authorization" not in delete.headers
    assert cast(object, delete.timeout) == (2.0, 2.0)
    assert not client.logged_on

    client.close()
    assert logout.call_count == 1


@pytest.mark.parametrize(
    "delete_response",
    [
        {"status_code": 401, "content": error_xml(401, "Unauthorized")},
        {"exc": requests.exceptions.ConnectionError("refused")},
        {"exc": requests.exceptions.ReadTimeout("slow")},
        {"exc": RuntimeError("anything at all")},
    ],
)
def test_close_swallows_every_error(
    requests_mock: Mocker, client: EMClient, delete_response: dict[str, Any]
) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    logout = requests_mock.delete(LOGOUT_URL, **delete_response)
    client.fetch_sessions(read_all)

    client.close()
    client.close()

    assert logout.call_count == 1
    assert not client.logged_on


def test_close_without_session_id_skips_logout(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(
        LOGON_URL, status_code=201, headers={"X-RestSvcSessionId": TOKEN}, content=b"<Odd/>"
    )
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    client.fetch_sessions(read_all)
    assert client.logged_on

    client.close()

    assert requests_to(requests_mock, "DELETE") == []
    assert not client.logged_on


def test_close_before_any_logon_sends_nothing(requests_mock: Mocker, client: EMClient) -> None:
    client.close()

    assert requests_mock.request_history == []


def test_fetch_after_close_logs_on_again(
    requests_mock: Mocker, client: EMClient, logged_logons: list[int]
) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    requests_mock.delete(LOGOUT_URL, status_code=204)
    client.fetch_sessions(read_all)
    client.close()

    client.fetch_sessions(read_all)

    assert logged_logons == [1, 1]


# -- TLS settings, repr, PollError ------------------------------------------------------------


def test_tls_verification_settings(requests_mock: Mocker) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    verifies: list[object] = []
    for tls in (
        TLSConfig(),
        TLSConfig(ca_file="/etc/em-ca.pem"),
        TLSConfig(insecure_skip_verify=True),
    ):
        EMClient(replace(SERVER, tls=tls)).fetch_sessions(read_all)
        verifies.append(last(requests_mock).verify)

    assert verifies == [True, "/etc/em-ca.pem", False]


def test_insecure_warning_is_silenced_only_for_that_host() -> None:
    def warn_for(host: str) -> None:
        warnings.warn(
            f"Unverified HTTPS request is being made to host '{host}'. Adding certificate "
            "verification is strongly advised.",
            urllib3.exceptions.InsecureRequestWarning,
            stacklevel=1,
        )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        EMClient(replace(SERVER, tls=TLSConfig(insecure_skip_verify=True)))
        warn_for("em01.example.com")
        warn_for("other.example.com")

    assert [str(w.message) for w in caught] == [
        "Unverified HTTPS request is being made to host 'other.example.com'. Adding "
        "certificate verification is strongly advised."
    ]


def test_repr_shows_no_secrets(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    client.fetch_sessions(read_all)

    text = repr(client)

    assert "logged_on=True" in text
    assert "em01" in text
    assert_no_secrets(text)
    assert "Basic" not in text


def test_url_userinfo_is_never_used_or_shown(requests_mock: Mocker) -> None:
    logon = requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    url = f"https://x:{PASSWORD}@em01.example.com:9398"
    with pytest.raises(ValueError, match="must not contain credentials") as refused:
        replace(SERVER, url=url)
    assert PASSWORD not in str(refused.value)
    # The type refuses such a URL; the client must still never use or show one.
    server = replace(SERVER)
    object.__setattr__(server, "url", url)
    em = EMClient(server)

    em.fetch_sessions(read_all)

    assert last(logon).headers["Authorization"] == f"Basic {BASIC}"
    assert_no_secrets(repr(em))


def test_poll_error_reasons() -> None:
    assert REASONS == ("connection", "timeout", "tls", "auth", "http", "parse")
    err = PollError("http", "GET /api/systemSessions: HTTP 503 Service Unavailable")
    assert str(err) == "GET /api/systemSessions: HTTP 503 Service Unavailable"
    assert err.reason == "http"
    with pytest.raises(ValueError, match="unknown poll error reason"):
        PollError("oops", "x")


# -- real sockets -----------------------------------------------------------------------------


Route = Callable[[BaseHTTPRequestHandler], None]


class _LocalEM(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[tuple[str, str], Route] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _LocalEM

    def _dispatch(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers.items())))
        route = self.server.routes.get((self.command, self.path))
        if route is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        route(self)

    do_GET = do_POST = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _reply(status: int, body: bytes, headers: dict[str, str] | None = None) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


@pytest.fixture
def local_em() -> Iterator[_LocalEM]:
    server = _LocalEM()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    server.routes[("POST", "/api/sessionMngr/?v=latest")] = _reply(
        201,
        logon_xml(SESSION_ID),
        {"X-RestSvcSessionId": TOKEN, "Set-Cookie": f"X-RestSvcSessionId={TOKEN}; Path=/api;"},
    )
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


def _local_client(local_em: _LocalEM, *, timeout: float = 5.0, scheme: str = "http") -> EMClient:
    url = local_em.url.replace("http://", f"{scheme}://")
    return EMClient(replace(SERVER, url=url, timeout=timeout))


@pytest.mark.integration
def test_real_gzip_stream_and_no_cookie_jar(local_em: _LocalEM) -> None:
    payload = SESSIONS_XML * 5000
    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = _reply(
        200, gzip.compress(payload), {"Content-Encoding": "gzip"}
    )
    em = _local_client(local_em)

    assert em.fetch_sessions(read_all) == payload
    assert em.fetch_sessions(read_all) == payload

    gets = [headers for method, _, headers in local_em.seen if method == "GET"]
    assert len(gets) == 2
    assert all(h["X-RestSvcSessionId"] == TOKEN for h in gets)
    assert all(h["Accept-Encoding"] == "gzip" for h in gets)
    # The EM would prefer a (possibly stale) cookie over the header: none may be sent.
    assert all("Cookie" not in h for h in gets)
    em.close()


@pytest.mark.integration
def test_real_read_timeout_mid_body(local_em: _LocalEM) -> None:
    def stall(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        handler.wfile.write(b"<SystemSessions>")
        handler.wfile.flush()
        local_em.release.wait(10)

    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = stall
    em = _local_client(local_em, timeout=0.3)

    err = expect_poll_error(em, "timeout")

    assert str(err) == "GET /api/systemSessions: reading the body timed out after 0.3s"


@pytest.mark.integration
def test_real_body_cut_short_is_connection(local_em: _LocalEM) -> None:
    def truncate(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        handler.wfile.write(b"<SystemSessions>")
        handler.close_connection = True

    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = truncate
    em = _local_client(local_em)

    err = expect_poll_error(em, "connection")

    assert str(err) == "GET /api/systemSessions: reading the body failed: connection closed early"


@pytest.mark.integration
def test_real_tls_handshake_failure_is_tls(local_em: _LocalEM) -> None:
    em = _local_client(local_em, scheme="https")

    err = expect_poll_error(em, "tls")

    assert str(err).startswith("POST /api/sessionMngr/: TLS handshake failed")


@pytest.mark.integration
def test_real_connection_refused_is_connection() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    em = EMClient(replace(SERVER, url=f"http://127.0.0.1:{port}", timeout=2.0))

    err = expect_poll_error(em, "connection")

    assert str(err) == "POST /api/sessionMngr/: connection refused"


# -- bounds: the deadline, the size cap, redirects, logout id, password rotation --------------


def _trickle_body(local_em: _LocalEM, *, status: int = 200, interval: float = 0.2) -> Route:
    """Headers at once (with a token), then the body a byte at a time until the test ends."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        # The client hangs up mid-answer: reading another request would only hit a reset.
        handler.close_connection = True
        handler.send_response(status)
        handler.send_header("X-RestSvcSessionId", TOKEN)
        handler.send_header("Content-Length", "100000000")
        handler.end_headers()
        with contextlib.suppress(OSError):
            while not local_em.release.wait(interval):
                handler.wfile.write(b" ")
                handler.wfile.flush()

    return route


def _trickle_head(local_em: _LocalEM, *, interval: float = 0.2) -> Route:
    """The status line and then an endless header, a byte at a time."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.wfile.write(b"HTTP/1.1 204 No Content\r\nX-Pad: ")
            handler.wfile.flush()
            while not local_em.release.wait(interval):
                handler.wfile.write(b"a")
                handler.wfile.flush()

    return route


@pytest.mark.integration
def test_real_trickled_body_fails_as_timeout_within_the_deadline(local_em: _LocalEM) -> None:
    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = _trickle_body(local_em)
    em = _local_client(local_em, timeout=1.0)

    started = time.monotonic()
    err = expect_poll_error(em, "timeout")
    elapsed = time.monotonic() - started

    # Bytes keep coming every 0.2 s, so no per-read timeout of 1 s could ever fire.
    assert elapsed < 1.0 + 1.0  # the logon is instant; the fetch has its 1 s deadline
    assert str(err) == "GET /api/systemSessions: reading the body timed out after 1s"


@pytest.mark.integration
def test_real_trickled_fetch_is_bounded_by_its_own_deadline(local_em: _LocalEM) -> None:
    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = _trickle_body(local_em)
    em = _local_client(local_em, timeout=1.0)
    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = _reply(200, SESSIONS_XML)
    assert em.fetch_sessions(read_all) == SESSIONS_XML  # logged on
    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = _trickle_body(local_em)

    started = time.monotonic()
    expect_poll_error(em, "timeout")

    assert 0.9 < time.monotonic() - started < 2.0


@pytest.mark.integration
@pytest.mark.parametrize("trickle", ["head", "body"])
def test_real_trickled_logon_fails_as_timeout_within_the_deadline(
    local_em: _LocalEM, trickle: str
) -> None:
    route = _trickle_head(local_em) if trickle == "head" else _trickle_body(local_em, status=201)
    local_em.routes[("POST", "/api/sessionMngr/?v=latest")] = route
    em = _local_client(local_em, timeout=1.0)

    started = time.monotonic()
    err = expect_poll_error(em, "timeout")

    assert time.monotonic() - started < 2.0
    assert str(err).startswith("POST /api/sessionMngr/: ")
    assert not em.logged_on


@pytest.mark.integration
def test_real_close_honours_its_bound_while_the_logout_trickles(local_em: _LocalEM) -> None:
    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = _reply(200, SESSIONS_XML)
    local_em.routes[("DELETE", f"/api/logonSessions/{SESSION_ID}")] = _trickle_head(local_em)
    em = _local_client(local_em, timeout=30.0)
    em.fetch_sessions(read_all)

    started = time.monotonic()
    em.close(timeout=0.5)

    assert time.monotonic() - started < 1.5
    assert ("DELETE", f"/api/logonSessions/{SESSION_ID}") in [(m, p) for m, p, _ in local_em.seen]
    assert not em.logged_on


def _gzip_stream(prefix: bytes, filler: bytes, total: int) -> Iterator[bytes]:
    """gzip of ``prefix`` and then ``filler`` up to ``total`` bytes, made as it is sent."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    yield compressor.compress(prefix)
    block = filler * (1 << 20)
    left = total - len(prefix)
    while left > 0:
        piece = block[: min(left, len(block))]
        left -= len(piece)
        yield compressor.compress(piece)
    yield compressor.flush()


def _chunked(chunks: Callable[[], Iterator[bytes]], headers: dict[str, str]) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        handler.send_response(200)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        with contextlib.suppress(OSError):
            for chunk in chunks():
                if chunk:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.write(b"0\r\n\r\n")

    return route


@pytest.mark.integration
def test_real_gzip_answer_past_max_answer_size_is_parse(local_em: _LocalEM) -> None:
    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = _chunked(
        lambda: _gzip_stream(b"<SystemSessions>", b" ", 64 << 20),
        {"Content-Encoding": "gzip"},
    )
    em = EMClient(replace(SERVER, url=local_em.url, timeout=10.0, max_answer_size=1 << 20))
    seen: list[int] = []

    def drain(stream: BinaryIO) -> None:
        while chunk := stream.read(65536):
            seen.append(len(chunk))

    with pytest.raises(PollError) as info:
        em.fetch_sessions(drain)

    assert info.value.reason == "parse"
    assert str(info.value) == (
        "GET /api/systemSessions: the answer exceeded max_answer_size (1MiB) after decoding"
    )
    assert sum(seen) <= 1 << 20  # consume never saw a byte past the cap


@pytest.mark.integration
def test_real_answer_of_exactly_max_answer_size_is_read_whole(local_em: _LocalEM) -> None:
    payload = b"<SystemSessions>" + b" " * ((1 << 20) - 33) + b"</SystemSessions>"
    assert len(payload) == 1 << 20
    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = _chunked(
        lambda: iter([gzip.compress(payload)]), {"Content-Encoding": "gzip"}
    )
    em = EMClient(replace(SERVER, url=local_em.url, max_answer_size=1 << 20))

    assert em.fetch_sessions(read_all) == payload


@pytest.mark.integration
def test_real_chunked_plain_answer_past_max_answer_size_is_parse(local_em: _LocalEM) -> None:
    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = _chunked(
        lambda: iter([b"x" * 65536] * 40), {}
    )
    em = EMClient(replace(SERVER, url=local_em.url, max_answer_size=1 << 20))

    err = expect_poll_error(em, "parse")

    assert "exceeded max_answer_size (1MiB)" in str(err)


@pytest.mark.integration
def test_real_content_length_past_max_answer_size_is_refused_unread(local_em: _LocalEM) -> None:
    local_em.routes[("GET", "/api/systemSessions?format=Entity")] = _trickle_body(local_em)
    em = EMClient(replace(SERVER, url=local_em.url, timeout=30.0, max_answer_size=1 << 20))
    consumed: list[int] = []

    started = time.monotonic()
    with pytest.raises(PollError) as info:
        em.fetch_sessions(lambda stream: consumed.append(1))

    assert time.monotonic() - started < 5  # not the 30 s deadline: nothing was read
    assert info.value.reason == "parse"
    assert str(info.value) == (
        "GET /api/systemSessions: the answer (100000000 bytes) exceeds max_answer_size (1MiB)"
    )
    assert consumed == []


def test_a_compressed_body_that_ends_early_is_parse(
    requests_mock: Mocker, client: EMClient
) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(
        SESSIONS_URL,
        headers={"Content-Encoding": "gzip"},
        content=gzip.compress(SESSIONS_XML * 100)[:-20],
    )

    err = expect_poll_error(client, "parse")

    assert str(err) == "GET /api/systemSessions: response body could not be decoded"


def test_an_unsupported_content_encoding_is_parse(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, headers={"Content-Encoding": "br"}, content=b"\x00\x01")

    err = expect_poll_error(client, "parse")

    assert str(err) == "GET /api/systemSessions: unsupported Content-Encoding 'br'"


@pytest.mark.parametrize("wrapped", [True, False])
def test_deflate_body_is_decoded_with_or_without_zlib_wrapper(
    requests_mock: Mocker, client: EMClient, wrapped: bool
) -> None:
    payload = SESSIONS_XML * 100
    compressor = zlib.compressobj(wbits=zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(
        SESSIONS_URL,
        headers={"Content-Encoding": "deflate"},
        content=compressor.compress(payload) + compressor.flush(),
    )

    assert client.fetch_sessions(read_all) == payload


def test_several_gzip_members_are_one_body(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(
        SESSIONS_URL,
        headers={"Content-Encoding": "gzip"},
        content=gzip.compress(b"<SystemSessions>") + gzip.compress(b"</SystemSessions>"),
    )

    assert client.fetch_sessions(read_all) == b"<SystemSessions></SystemSessions>"


@pytest.mark.integration
@pytest.mark.parametrize("target", ["logon", "fetch"])
def test_real_redirect_is_http_and_the_other_host_is_never_asked(
    local_em: _LocalEM, target: str
) -> None:
    other = _LocalEM()
    thread = threading.Thread(target=other.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        elsewhere = other.url + "/api/systemSessions?format=Entity"
        other.routes[("GET", "/api/systemSessions?format=Entity")] = _reply(200, SESSIONS_XML)
        other.routes[("POST", "/api/sessionMngr/?v=latest")] = _reply(201, b"")
        key = (
            ("POST", "/api/sessionMngr/?v=latest")
            if target == "logon"
            else ("GET", "/api/systemSessions?format=Entity")
        )
        local_em.routes[key] = _reply(307, b"", {"Location": elsewhere})
        em = _local_client(local_em)

        err = expect_poll_error(em, "http")

        assert "HTTP 307 Temporary Redirect" in str(err)
        assert f"(redirect to {elsewhere} not followed)" in str(err)
        assert other.seen == []
    finally:
        other.shutdown()
        other.server_close()
        thread.join()


def test_logout_id_comes_from_location_when_the_body_has_none(
    requests_mock: Mocker, client: EMClient, caplog: pytest.LogCaptureFixture
) -> None:
    requests_mock.post(
        LOGON_URL,
        status_code=201,
        headers={
            "X-RestSvcSessionId": TOKEN,
            "Location": f"{BASE}/api/logonSessions/{SESSION_ID}/",
        },
        content=b"",
    )
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    logout = requests_mock.delete(LOGOUT_URL, status_code=204)
    client.fetch_sessions(read_all)

    with caplog.at_level(logging.INFO, logger="exporter.emclient"):
        client.close(timeout=2.0)

    assert logout.call_count == 1
    assert last(logout).headers["X-RestSvcSessionId"] == TOKEN
    (record,) = [r for r in caplog.records if r.name == "exporter.emclient"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == "logged out"
    assert record.__dict__["fields"] == {"server": "em01"}


def test_the_body_session_id_wins_over_location(requests_mock: Mocker, client: EMClient) -> None:
    response = logon_response(TOKEN, SESSION_ID)
    response["headers"]["Location"] = f"{BASE}/api/logonSessions/{SESSION_ID_2}"
    requests_mock.post(LOGON_URL, **response)
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    logout = requests_mock.delete(LOGOUT_URL, status_code=204)
    client.fetch_sessions(read_all)

    client.close()

    assert logout.call_count == 1


def test_a_refused_logout_is_logged_without_secrets(
    requests_mock: Mocker, client: EMClient, caplog: pytest.LogCaptureFixture
) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    requests_mock.delete(LOGOUT_URL, status_code=401, reason="Unauthorized")
    client.fetch_sessions(read_all)

    with caplog.at_level(logging.INFO, logger="exporter.emclient"):
        client.close()

    (record,) = [r for r in caplog.records if r.name == "exporter.emclient"]
    assert record.getMessage() == "logout failed"
    fields = record.__dict__["fields"]
    assert fields["err"] == "DELETE /api/logonSessions/: HTTP 401 Unauthorized"
    assert_no_secrets(str(fields))


def _basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"{USERNAME}:{password}".encode()).decode()


def test_password_file_is_read_again_before_each_logon(
    requests_mock: Mocker, tmp_path: Path
) -> None:
    secret = tmp_path / "em01.password"
    secret.write_text("first-Pa55word\n", encoding="utf-8")
    logon = requests_mock.post(
        LOGON_URL,
        [logon_response(TOKEN, SESSION_ID), logon_response(TOKEN_2, SESSION_ID_2)],
    )
    requests_mock.get(
        SESSIONS_URL,
        [{"content": SESSIONS_XML}, {"status_code": 401}, {"content": SESSIONS_XML}],
    )
    em = EMClient(replace(SERVER, password="first-Pa55word", password_file=str(secret)))
    em.fetch_sessions(read_all)

    # Rotated with a byte-order mark, as some editors write it.
    secret.write_bytes("\ufeffsecond-Pa55word\r\n".encode())
    em.fetch_sessions(read_all)  # the token expired: a fresh logon with the new password

    assert [r.headers["Authorization"] for r in logon.request_history] == [
        _basic("first-Pa55word"),
        _basic("second-Pa55word"),
    ]


def test_an_inline_password_is_used_as_it_is(requests_mock: Mocker, client: EMClient) -> None:
    logon = requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)

    client.fetch_sessions(read_all)

    assert last(logon).headers["Authorization"] == _basic(PASSWORD)


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (None, "cannot read password_file {path}: No such file or directory"),
        (b"  \n", "password_file {path} is empty"),
        (b"\xff\xfe" + PASSWORD.encode(), "password_file {path} is not valid UTF-8"),
    ],
)
def test_an_unreadable_password_file_is_auth_naming_the_file_only(
    requests_mock: Mocker, tmp_path: Path, content: bytes | None, detail: str
) -> None:
    secret = tmp_path / "em01.password"
    secret.write_text(PASSWORD, encoding="utf-8")
    em = EMClient(replace(SERVER, password_file=str(secret)))
    if content is None:
        secret.unlink()
    else:
        secret.write_bytes(content)

    err = expect_poll_error(em, "auth")

    assert str(err) == detail.format(path=secret)
    assert requests_mock.request_history == []  # nothing was sent without a password
    # Nothing was refused: it must not count towards suspending logons.
    assert not isinstance(err, LogonRefused)


def test_a_rotated_password_echoed_by_the_em_is_redacted(
    requests_mock: Mocker, tmp_path: Path
) -> None:
    secret = tmp_path / "em01.password"
    secret.write_text("Rotated-Pa55word", encoding="utf-8")
    requests_mock.post(LOGON_URL, status_code=401, content=error_xml(401, "bad Rotated-Pa55word"))
    em = EMClient(replace(SERVER, password_file=str(secret)))

    err = expect_poll_error(em, "auth")

    assert "Rotated-Pa55word" not in str(err)
    assert "bad <redacted>" in str(err)
