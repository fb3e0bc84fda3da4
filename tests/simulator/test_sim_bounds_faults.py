"""Faults for testing a client's bounds: trickled answers, redirects, oversized answers, a
gzip bomb, and a logon that names its session only in Location."""

from __future__ import annotations

import gzip
import json
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from exporter.simulator import SimulatedEM

from .helpers import AUTH, TOKEN, Q, get, logon, parse_xml

LIST = "/api/systemSessions?format=Entity"
LOGON = "/api/sessionMngr/?v=latest"


def _connect(em: SimulatedEM) -> socket.socket:
    parts = urlsplit(em.url)
    return socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10)


def _send(sock: socket.socket, method: str, path: str, token: str) -> None:
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\n{TOKEN}: {token}\r\n\r\n"
    sock.sendall(request.encode())


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the simulator closed the connection"
        data += chunk
    return data


def _recv_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the simulator closed the connection"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _session_id(em: SimulatedEM) -> tuple[str, str]:
    response = requests.post(em.url + LOGON, auth=AUTH, timeout=10)
    session_id = parse_xml(response.content).findtext(Q + "SessionId")
    assert session_id
    return response.headers[TOKEN], session_id


def test_trickle_sends_the_headers_then_the_body_a_byte_at_a_time(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("trickle", delay=0.2)
    with _connect(em) as sock:
        _send(sock, "GET", LIST, token)
        head, early = _recv_head(sock)
        started = time.monotonic()
        body = early + _recv_exactly(sock, 3 - len(early))
        elapsed = time.monotonic() - started
    assert b"HTTP/1.1 200 OK" in head
    assert b"Content-Length: " in head
    assert body == b"<?x"
    assert elapsed >= 0.3  # at least two pauses of 0.2 s between three bytes, minus jitter
    assert em.stats.faults_served == {"trickle": 1}


def test_trickle_without_a_delay_is_a_byte_a_second(em: SimulatedEM) -> None:
    em.inject("trickle")
    token = logon(em)
    with _connect(em) as sock:
        _send(sock, "GET", LIST, token)
        _, early = _recv_head(sock)
        sock.settimeout(0.5)
        first = early or sock.recv(10)
        with pytest.raises(TimeoutError):
            sock.recv(10)  # the second byte is a second away
    assert len(first) == 1


def test_trickled_logout_sends_its_headers_a_byte_at_a_time(em: SimulatedEM) -> None:
    token, session_id = _session_id(em)
    em.inject("trickle", delay=0.2, target="logout")
    with _connect(em) as sock:
        _send(sock, "DELETE", f"/api/logonSessions/{session_id}", token)
        started = time.monotonic()
        first = _recv_exactly(sock, 4)
        elapsed = time.monotonic() - started
    assert first == b"HTTP"
    assert elapsed >= 0.5
    assert em.stats.logouts == 1  # the logout itself happened; only its answer is slow


def test_stop_ends_a_trickle(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("trickle", delay=30)
    with _connect(em) as sock:
        _send(sock, "GET", LIST, token)
        _recv_head(sock)
        started = time.monotonic()
        em.stop()
        while sock.recv(65536):
            pass
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("target", ["systemSessions", "logon", "logout"])
def test_redirect_points_elsewhere_and_is_not_counted_as_the_route(
    em: SimulatedEM, target: str
) -> None:
    token, session_id = _session_id(em)
    em.inject("redirect", target=target)  # type: ignore[arg-type]
    if target == "systemSessions":
        response = requests.get(
            em.url + LIST, headers={TOKEN: token}, allow_redirects=False, timeout=10
        )
    elif target == "logon":
        response = requests.post(em.url + LOGON, auth=AUTH, allow_redirects=False, timeout=10)
    else:
        response = requests.delete(
            f"{em.url}/api/logonSessions/{session_id}",
            headers={TOKEN: token},
            allow_redirects=False,
            timeout=10,
        )
    assert response.status_code == 302
    assert response.headers["Location"] == em.url + "/api/redirected"
    assert em.stats.logons == 1 and em.stats.logouts == 0  # nothing done but the redirect


def test_redirect_to_a_given_location(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("redirect", location="http://127.0.0.1:9/elsewhere")
    response = requests.get(
        em.url + LIST, headers={TOKEN: token}, allow_redirects=False, timeout=10
    )
    assert response.headers["Location"] == "http://127.0.0.1:9/elsewhere"


@pytest.mark.parametrize("accept", ["application/xml", "application/json"])
@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_oversized_is_the_collection_padded_to_size(
    em: SimulatedEM, accept: str, encoding: str
) -> None:
    token = logon(em)
    normal = get(em, LIST, token, Accept=accept).content
    size = len(normal) + 3 * 1024**2 + 5
    em.inject("oversized", size=size)
    response = get(em, LIST, token, Accept=accept, **{"Accept-Encoding": encoding})
    assert response.status_code == 200
    assert len(response.content) == size
    if encoding == "gzip":
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Transfer-Encoding"] == "chunked"
    else:
        assert response.headers["Content-Length"] == str(size)
    if accept == "application/json":
        assert json.loads(response.content) == json.loads(normal)
    else:
        assert len(parse_xml(response.content)) == len(parse_xml(normal))


def test_oversized_default_size_is_64_mib(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("oversized")
    response = get(em, LIST, token, **{"Accept-Encoding": "identity"})
    assert response.headers["Content-Length"] == str(64 * 1024**2)


def test_gzip_bomb_is_a_valid_gzip_of_zeros_whatever_the_client_accepts(em: SimulatedEM) -> None:
    token = logon(em)
    size = 5 * 1024**2 + 3
    em.inject("gzip_bomb", size=size)
    with _connect(em) as sock:
        request = f"GET {LIST} HTTP/1.1\r\nHost: x\r\n{TOKEN}: {token}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert len(body) < size // 500
    assert gzip.decompress(body) == bytes(size)


def test_gzip_bomb_of_ten_gib_by_default_is_about_ten_mb(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("gzip_bomb")
    response = requests.get(em.url + LIST, headers={TOKEN: token}, stream=True, timeout=10)
    length = int(response.headers["Content-Length"])
    response.close()
    assert 5_000_000 < length < 20_000_000


def test_location_only_logon_has_no_body_and_a_location_that_logs_out(em: SimulatedEM) -> None:
    em.inject("location_only", target="logon")
    response = requests.post(em.url + LOGON, auth=AUTH, timeout=10)
    assert response.status_code == 201
    assert response.content == b""
    token = response.headers[TOKEN]
    location = response.headers["Location"]
    assert location.startswith(em.url + "/api/logonSessions/")
    deleted = requests.delete(location, headers={TOKEN: token}, timeout=10)
    assert deleted.status_code == 204
    assert em.stats.logouts == 1


@pytest.mark.parametrize("fault", ["500", "503", "401"])
def test_logout_faults_leave_the_logon_session_alive(em: SimulatedEM, fault: str) -> None:
    token, session_id = _session_id(em)
    em.inject(fault, target="logout")
    url = f"{em.url}/api/logonSessions/{session_id}"
    assert requests.delete(url, headers={TOKEN: token}, timeout=10).status_code == int(fault)
    assert em.stats.active_tokens() == 1
    assert requests.delete(url, headers={TOKEN: token}, timeout=10).status_code == 204


def test_bad_bounds_injections_are_refused(em: SimulatedEM) -> None:
    with pytest.raises(ValueError, match="size"):
        em.inject("oversized", size=0)
    with pytest.raises(ValueError, match="systemSessions"):
        em.inject("location_only")
    with pytest.raises(ValueError, match="logon"):
        em.inject("gzip_bomb", target="logon")
    with pytest.raises(ValueError, match="logout"):
        em.inject("malformed", target="logout")


def test_bounds_faults_by_control_api(em: SimulatedEM) -> None:
    base = em.url + "/_sim/faults"
    response = requests.post(base + "?fault=oversized&size=2000000", timeout=10)
    assert response.json()["pending_faults"]["systemSessions"] == ["oversized"]
    response = requests.post(base + "?fault=trickle&target=logout&delay=0.5", timeout=10)
    assert response.json()["pending_faults"]["logout"] == ["trickle"]
    assert requests.post(base + "?fault=gzip_bomb&size=x", timeout=10).status_code == 400
    token = logon(em)
    oversized = get(em, LIST, token, **{"Accept-Encoding": "identity"})
    assert oversized.headers["Content-Length"] == "2000000"
