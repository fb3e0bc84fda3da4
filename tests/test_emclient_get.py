"""EMClient.get: the feeds' bounded GET, and one logon shared by the feeds of a server."""

from __future__ import annotations

import gzip
import io
import threading
from collections.abc import Iterator
from dataclasses import replace
from types import TracebackType
from typing import Any

import pytest
from fakes import wait_for
from requests_mock import Mocker
from test_emclient import (
    BASE,
    LOGON_URL,
    SECRETS,
    SERVER,
    SESSION_ID,
    SESSION_ID_2,
    SESSIONS_URL,
    SESSIONS_XML,
    TOKEN,
    TOKEN_2,
    error_xml,
    last,
    logon_response,
    read_all,
    requests_to,
)

from exporter.emclient import EMClient
from exporter.reasons import Forbidden, LogonRefused, PollError, StatusError

QUERY = "/api/query?type=BackupJobSession&format=Entities&filter=State%21%3DStopped&page=1"
QUERY_URL = BASE + QUERY
BODY = b"<QueryResult/>"


@pytest.fixture
def client() -> Iterator[EMClient]:
    em = EMClient(SERVER)
    yield em
    em.close(timeout=0.5)


def test_get_sends_the_path_and_query_as_given_with_the_shared_token(
    requests_mock: Mocker, client: EMClient
) -> None:
    logon = requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    query = requests_mock.get(QUERY_URL, complete_qs=True, content=BODY)
    sessions = requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)

    assert client.get(QUERY, read_all) == BODY
    assert client.fetch_sessions(read_all) == SESSIONS_XML

    assert logon.call_count == 1  # one logon session for both resources
    request = last(query)
    # The filter is sent exactly as encoded by the caller (the EM decodes it itself).
    assert request.url == QUERY_URL
    assert request.headers["X-RestSvcSessionId"] == TOKEN
    assert request.headers["Accept"] == "application/xml"
    assert "Authorization" not in request.headers
    assert request.stream is True
    assert last(sessions).headers["X-RestSvcSessionId"] == TOKEN


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_an_error_status_carries_its_code_and_names_the_path_without_the_query(
    requests_mock: Mocker, client: EMClient, status: int
) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    path = "/api/backupSessions/5c5e7b0e-0c3a-4b8e-9d6f-6a1f0c0e9a11?format=Entity"
    requests_mock.get(
        BASE + path, status_code=status, content=error_xml(status, f"gone, token {TOKEN}")
    )

    with pytest.raises(StatusError) as info:
        client.get(path, read_all)

    err = info.value
    assert (err.status, err.reason) == (status, "http")
    assert str(err).startswith(
        f"GET /api/backupSessions/5c5e7b0e-0c3a-4b8e-9d6f-6a1f0c0e9a11: HTTP {status}"
    )
    assert "format=Entity" not in str(err)
    assert str(err).endswith("gone, token <redacted>")
    for secret in SECRETS:
        assert secret not in str(err)


def test_a_redirect_is_not_followed(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(QUERY_URL, status_code=302, headers={"Location": "https://evil/x"})
    elsewhere = requests_mock.get("https://evil/x", content=BODY)

    with pytest.raises(StatusError) as info:
        client.get(QUERY, read_all)

    assert info.value.status == 302
    assert "redirect to https://evil/x not followed" in str(info.value)
    assert not elsewhere.called


def test_a_rejected_token_means_one_fresh_logon_and_one_retry(
    requests_mock: Mocker, client: EMClient
) -> None:
    requests_mock.post(
        LOGON_URL,
        [logon_response(TOKEN, SESSION_ID), logon_response(TOKEN_2, SESSION_ID_2)],
    )
    query = requests_mock.get(QUERY_URL, [{"status_code": 401}, {"content": BODY}])

    assert client.get(QUERY, read_all) == BODY

    assert [r.headers["X-RestSvcSessionId"] for r in query.request_history] == [TOKEN, TOKEN_2]


def test_rejected_again_after_a_fresh_logon_is_auth(
    requests_mock: Mocker, client: EMClient
) -> None:
    requests_mock.post(
        LOGON_URL,
        [logon_response(TOKEN, SESSION_ID), logon_response(TOKEN_2, SESSION_ID_2)],
    )
    requests_mock.delete(f"{BASE}/api/logonSessions/{SESSION_ID}", status_code=204)
    requests_mock.delete(f"{BASE}/api/logonSessions/{SESSION_ID_2}", status_code=204)
    requests_mock.get(QUERY_URL, status_code=403, reason="Forbidden")

    with pytest.raises(PollError) as info:
        client.get(QUERY, read_all)

    assert info.value.reason == "auth"
    assert str(info.value) == "GET /api/query: HTTP 403 Forbidden again after a fresh logon"
    # After a 403 the EM session still lives: each rejected one is logged out.
    assert len(requests_to(requests_mock, "DELETE")) == 2


def test_a_403_without_forbidden_relogon_keeps_the_shared_session(
    requests_mock: Mocker, client: EMClient
) -> None:
    logon = requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    query = requests_mock.get(
        QUERY_URL, status_code=403, reason="Forbidden", content=error_xml(403, "Access denied")
    )
    sessions = requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    logout = requests_mock.delete(f"{BASE}/api/logonSessions/{SESSION_ID}", status_code=204)

    assert client.fetch_sessions(read_all) == SESSIONS_XML
    with pytest.raises(Forbidden) as info:
        client.get(QUERY, read_all, forbidden_relogon=False)

    assert info.value.reason == "auth"
    assert str(info.value) == (
        "GET /api/query: HTTP 403 Forbidden: the account's Enterprise Manager role does not "
        "allow this resource"
    )
    assert query.call_count == 1  # no retry: a fresh logon gets the same role
    assert logon.call_count == 1
    assert not logout.called
    assert client.logged_on
    # The token the 403 came with is still good for what the role allows.
    assert client.fetch_sessions(read_all) == SESSIONS_XML
    assert [r.headers["X-RestSvcSessionId"] for r in sessions.request_history] == [TOKEN, TOKEN]
    assert logon.call_count == 1


def test_a_401_without_forbidden_relogon_still_means_one_fresh_logon_and_one_retry(
    requests_mock: Mocker, client: EMClient
) -> None:
    logon = requests_mock.post(
        LOGON_URL,
        [logon_response(TOKEN, SESSION_ID), logon_response(TOKEN_2, SESSION_ID_2)],
    )
    query = requests_mock.get(QUERY_URL, [{"status_code": 401}, {"content": BODY}])

    assert client.get(QUERY, read_all, forbidden_relogon=False) == BODY

    assert logon.call_count == 2
    assert [r.headers["X-RestSvcSessionId"] for r in query.request_history] == [TOKEN, TOKEN_2]


def test_a_403_after_the_fresh_logon_a_401_asked_for_keeps_that_session(
    requests_mock: Mocker, client: EMClient
) -> None:
    requests_mock.post(
        LOGON_URL,
        [logon_response(TOKEN, SESSION_ID), logon_response(TOKEN_2, SESSION_ID_2)],
    )
    requests_mock.get(QUERY_URL, [{"status_code": 401}, {"status_code": 403}])
    sessions = requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    logout = requests_mock.delete(f"{BASE}/api/logonSessions/{SESSION_ID_2}", status_code=204)

    with pytest.raises(Forbidden):
        client.get(QUERY, read_all, forbidden_relogon=False)

    assert not logout.called
    assert client.fetch_sessions(read_all) == SESSIONS_XML
    assert last(sessions).headers["X-RestSvcSessionId"] == TOKEN_2


def test_a_refused_logon_is_logon_refused(requests_mock: Mocker, client: EMClient) -> None:
    requests_mock.post(LOGON_URL, status_code=401, content=error_xml(401, "Login failed"))

    with pytest.raises(LogonRefused) as info:
        client.get(QUERY, read_all, forbidden_relogon=False)

    assert info.value.reason == "auth"
    assert str(info.value).startswith("logon refused: HTTP 401")


def test_the_answer_size_cap_and_gzip_apply(requests_mock: Mocker) -> None:
    small = EMClient(replace(SERVER, max_answer_size=1000))
    requests_mock.post(LOGON_URL, **logon_response(TOKEN, SESSION_ID))
    requests_mock.get(
        QUERY_URL,
        body=io.BytesIO(gzip.compress(b" " * 5000)),
        headers={"Content-Encoding": "gzip"},
    )

    with pytest.raises(PollError) as info:
        small.get(QUERY, read_all)

    assert info.value.reason == "parse"
    assert str(info.value) == (
        "GET /api/query: the answer exceeded max_answer_size (1000B) after decoding"
    )
    requests_mock.get(
        QUERY_URL, body=io.BytesIO(gzip.compress(BODY)), headers={"Content-Encoding": "gzip"}
    )
    assert small.get(QUERY, read_all) == BODY
    small.close(timeout=0.1)


@pytest.mark.parametrize(
    "path", ["api/query", "/other", "/api/x\r\nHost: evil", "/api/x#frag", "https://x/api/"]
)
def test_only_paths_under_api_are_accepted(client: EMClient, path: str) -> None:
    with pytest.raises(ValueError, match="must start with /api/"):
        client.get(path, read_all)


class _CountingLock:
    """A lock that counts the threads that asked for it, so a test can wait for a waiter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.asked = 0

    def __enter__(self) -> None:
        self.asked += 1
        self._lock.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()


def test_feeds_that_need_a_token_at_once_share_one_logon(requests_mock: Mocker) -> None:
    em = EMClient(SERVER)
    lock = _CountingLock()
    em._logon_lock = lock  # type: ignore[assignment]
    in_logon = threading.Event()
    release = threading.Event()

    def slow_logon(request: Any, context: Any) -> bytes:
        in_logon.set()
        release.wait(5.0)
        context.status_code = 201
        context.headers["X-RestSvcSessionId"] = TOKEN
        return logon_response(TOKEN, SESSION_ID)["content"]  # type: ignore[no-any-return]

    logon = requests_mock.post(LOGON_URL, content=slow_logon)
    requests_mock.get(QUERY_URL, content=BODY)
    requests_mock.get(SESSIONS_URL, content=SESSIONS_XML)
    results: list[bytes] = []
    first = threading.Thread(target=lambda: results.append(em.get(QUERY, read_all)))
    first.start()
    assert in_logon.wait(5.0)
    second = threading.Thread(target=lambda: results.append(em.fetch_sessions(read_all)))
    second.start()
    # The second feed asks for the token while the first one's logon is still under way.
    assert wait_for(lambda: lock.asked == 2)
    release.set()
    first.join(5.0)
    second.join(5.0)

    assert sorted(results) == sorted([BODY, SESSIONS_XML])
    assert logon.call_count == 1
    em.close(timeout=0.1)
