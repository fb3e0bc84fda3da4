"""Injected faults, latency and the request counters."""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests
from lxml import etree

from exporter.simulator import FAULT_KINDS, SimulatedEM

from .helpers import AUTH, TOKEN, Q, get, logon, parse_xml

LIST = "/api/systemSessions?format=Entity"


def raw_get(em: SimulatedEM, path: str, token: str) -> tuple[dict[str, str], bytes]:
    """Send a GET on a bare socket and read until the server closes: headers and body bytes."""
    parts = urlsplit(em.url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n{TOKEN}: {token}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return headers, body


def test_500_then_normal(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("500")
    failed = get(em, LIST, token)
    assert failed.status_code == 500
    root = parse_xml(failed.content)
    assert root.tag == Q + "Error" and root.get("StatusCode") == "500"
    assert get(em, LIST, token).status_code == 200


def test_503_for_the_next_count_requests(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("503", count=2)
    assert [get(em, LIST, token).status_code for _ in range(3)] == [503, 503, 200]
    assert em.stats.faults_served == {"503": 2}


def test_faults_play_in_injection_order_and_spare_other_routes(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("500")
    em.inject("503")
    assert get(em, "/api/", token).status_code == 200
    assert get(em, "/api/logonSessions", token).status_code == 200
    assert get(em, "/api/systemSessions", token).status_code == 500
    assert get(em, LIST, token).status_code == 503
    assert get(em, LIST, token).status_code == 200


def test_delay(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("delay", delay=0.3)
    started = time.monotonic()
    assert get(em, LIST, token).status_code == 200
    assert time.monotonic() - started >= 0.3
    em.inject("delay", delay=2)
    with pytest.raises(requests.Timeout):
        requests.get(em.url + LIST, headers={TOKEN: token}, timeout=0.2)


def test_malformed_xml_and_json(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("malformed", count=2)
    broken = get(em, LIST, token)
    assert broken.status_code == 200
    assert int(broken.headers["Content-Length"]) > 0
    with pytest.raises(etree.XMLSyntaxError):
        parse_xml(broken.content)
    broken_json = get(em, LIST, token, Accept="application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken_json.content)


def test_truncated_body_is_shorter_than_promised(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("truncated")
    headers, body = raw_get(em, LIST, token)
    assert 0 < len(body) < int(headers["content-length"])
    em.inject("truncated")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(em, LIST, token)
    em.inject("truncated")
    parts = urlsplit(em.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    connection.request("GET", LIST, headers={TOKEN: token})
    with pytest.raises(http.client.IncompleteRead):
        connection.getresponse().read()
    connection.close()
    assert get(em, LIST, token).status_code == 200


def test_reset_gives_no_response(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("reset")
    with pytest.raises(requests.ConnectionError):
        get(em, LIST, token)
    assert get(em, LIST, token).status_code == 200


def test_empty_is_a_valid_empty_collection(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("empty", count=2)
    root = parse_xml(get(em, LIST, token).content)
    assert root.tag == Q + "SystemSessions" and len(root) == 0
    assert get(em, LIST, token, Accept="application/json").json() == {"Sessions": []}
    assert len(parse_xml(get(em, LIST, token).content)) > 0


def test_401_without_expiring_the_token(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("401")
    refused = get(em, LIST, token)
    assert refused.status_code == 401
    assert parse_xml(refused.content).get("StatusCode") == "401"
    assert get(em, LIST, token).status_code == 200
    assert em.stats.active_tokens() == 1


def test_faults_wait_for_an_authenticated_request(em: SimulatedEM) -> None:
    em.inject("500")
    assert get(em, LIST, None).status_code == 401
    assert get(em, LIST, logon(em)).status_code == 500


def test_logon_faults(em: SimulatedEM) -> None:
    url = em.url + "/api/sessionMngr/?v=latest"
    em.inject("503", target="logon")
    assert requests.post(url, auth=AUTH, timeout=10).status_code == 503
    em.inject("401", target="logon")
    refused = requests.post(url, auth=AUTH, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Basic Realm=RestSvc"
    assert em.stats.failed_logons == 1
    em.inject("reset", target="logon")
    with pytest.raises(requests.ConnectionError):
        requests.post(url, auth=AUTH, timeout=10)
    em.inject("malformed", target="logon")
    broken = requests.post(url, auth=AUTH, timeout=10)
    assert broken.status_code == 201 and TOKEN in broken.headers
    with pytest.raises(etree.XMLSyntaxError):
        parse_xml(broken.content)
    assert requests.post(url, auth=AUTH, timeout=10).status_code == 201
    assert em.stats.logons == 2


def test_bad_injections_are_refused(em: SimulatedEM) -> None:
    assert set(FAULT_KINDS) == {
        "500",
        "503",
        "delay",
        "malformed",
        "truncated",
        "reset",
        "empty",
        "401",
        "trickle",
        "redirect",
        "oversized",
        "gzip_bomb",
        "location_only",
        "403",
        "duplicate",
        "flip_casing",
    }
    with pytest.raises(ValueError, match="unknown fault"):
        em.inject("404")
    with pytest.raises(ValueError, match="count"):
        em.inject("500", count=0)
    with pytest.raises(ValueError, match="logon"):
        em.inject("empty", target="logon")
    with pytest.raises(ValueError, match="target"):
        em.inject("500", target="everything")  # type: ignore[arg-type]


def test_clear_faults(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("500", count=5)
    em.clear_faults()
    assert get(em, LIST, token).status_code == 200


def test_latency_is_added_to_every_response(em: SimulatedEM) -> None:
    em.set(latency=0.2)
    started = time.monotonic()
    assert requests.get(em.url + "/api/", timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_stop_ends_a_pending_delay_at_once(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("delay", delay=30)
    started = time.monotonic()
    with pytest.raises(requests.RequestException):
        requests.get(em.url + LIST, headers={TOKEN: token}, timeout=0.2)
    em.stop()
    assert time.monotonic() - started < 5


def test_stats_count_routes_logons_and_logouts(em: SimulatedEM) -> None:
    response = requests.post(em.url + "/api/sessionMngr", auth=AUTH, timeout=10)
    token = response.headers[TOKEN]
    requests.post(em.url + "/api/sessionMngr/?v=latest", auth=("x", "y"), timeout=10)
    get(em, "/api/", None)
    get(em, LIST, token)
    get(em, "/api/systemSessions", token)
    get(em, "/api/systemSessions", None)
    session_id = parse_xml(response.content).findtext(Q + "SessionId")
    requests.delete(f"{em.url}/api/logonSessions/{session_id}", headers={TOKEN: token}, timeout=10)
    get(em, "/_sim/stats", None)
    assert em.stats.requests_by_route == {
        "POST /api/sessionMngr": 2,
        "GET /api/": 1,
        "GET /api/systemSessions": 3,
        "DELETE /api/logonSessions": 1,
    }
    assert (em.stats.logons, em.stats.failed_logons, em.stats.logouts) == (1, 1, 1)
    assert em.stats.unauthorized == 1
    assert em.stats.active_tokens() == 0
