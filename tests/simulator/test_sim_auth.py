"""Entry point, logon, tokens (header, cookie, idle expiry, forced expiry), logout, routing."""

from __future__ import annotations

import base64

import pytest
import requests

from exporter.simulator import SimulatedEM, SimulatorSettings

from .helpers import AUTH, NS, TOKEN, ManualClock, Q, get, logon, parse_xml, text


def test_entry_point_needs_no_auth_and_lists_versions(em: SimulatedEM) -> None:
    for path in ("/api/", "/api"):
        response = requests.get(em.url + path, timeout=10)
        assert response.status_code == 200
        assert response.headers["Server"] == "Microsoft-HTTPAPI/2.0"
        assert response.headers["Content-Type"].startswith("application/xml")
        root = parse_xml(response.content)
        assert root.tag == Q + "EnterpriseManager"
        names = [v.get("Name") for v in root.iter(Q + "SupportedVersion")]
        assert names == ["v1_5", "v1_6", "v1_7"]
        creates = [
            link.get("Href") for link in root.iter(Q + "Link") if link.get("Rel") == "Create"
        ]
        assert em.url + "/api/sessionMngr/?v=latest" in creates


def test_entry_point_in_json_follows_the_casing(em: SimulatedEM) -> None:
    accept = {"Accept": "application/json"}
    pascal = requests.get(em.url + "/api/", headers=accept, timeout=10).json()
    assert [v["Name"] for v in pascal["SupportedVersions"]["SupportedVersions"]] == [
        "v1_5",
        "v1_6",
        "v1_7",
    ]
    em.set(json_casing="camel")
    camel = requests.get(em.url + "/api/", headers=accept, timeout=10).json()
    assert list(camel) == ["supportedVersions", "links", "href", "type"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/sessionMngr/?v=latest",
        "/api/sessionMngr?v=latest",
        "/api/sessionMngr/?v=v1_5",
        "/api/sessionMngr/?v=v1_6",
        "/api/sessionMngr/?v=v1_7",
        "/api/sessionMngr/",
        "/api/sessionMngr",
    ],
)
def test_logon_shapes(em: SimulatedEM, path: str) -> None:
    response = requests.post(em.url + path, auth=AUTH, timeout=10)
    assert response.status_code == 201
    token = response.headers[TOKEN]
    assert response.headers["Set-Cookie"] == f"{TOKEN}={token}; Path=/api;"
    root = parse_xml(response.content)
    assert root.tag == Q + "LogonSession"
    assert root.get("Type") == "LogonSession"
    session_id = text(root, "SessionId")
    assert session_id is not None
    assert base64.b64decode(token).decode() == session_id
    assert root.get("Href") == f"{em.url}/api/logonSessions/{session_id}"
    assert text(root, "UserName") == AUTH[0]
    links = {
        (link.get("Rel"), link.get("Href")): link.get("Type") for link in root.iter(Q + "Link")
    }
    assert links[("Down", em.url + "/api/systemSessions")] == "BackupJobSessionReferenceList"
    assert links[("Down", em.url + "/api/systemSessions?format=Entity")] == "BackupJobSessionList"
    assert ("Delete", f"{em.url}/api/logonSessions/{session_id}") in links
    assert get(em, "/api/systemSessions?format=Entity", token).status_code == 200


def test_logon_in_json(em: SimulatedEM) -> None:
    response = requests.post(
        em.url + "/api/sessionMngr/?v=latest",
        auth=AUTH,
        headers={"Accept": "application/json"},
        timeout=10,
    )
    body = response.json()
    assert list(body) == ["UserName", "SessionId", "Links", "Href", "Type"]
    assert body["Type"] == "LogonSession"
    delete = [link for link in body["Links"] if link["Rel"] == "Delete"]
    assert delete == [{"Rel": "Delete", "Href": body["Href"], "Name": None, "Type": None}]


def test_unknown_version_is_a_bad_request(em: SimulatedEM) -> None:
    response = requests.post(em.url + "/api/sessionMngr/?v=v1_9", auth=AUTH, timeout=10)
    assert response.status_code == 400
    assert parse_xml(response.content).get("StatusCode") == "400"


@pytest.mark.parametrize("auth", [None, ("CORP\\svc_monitoring", "wrong"), ("someone", "demo")])
def test_bad_or_missing_credentials(em: SimulatedEM, auth: tuple[str, str] | None) -> None:
    response = requests.post(em.url + "/api/sessionMngr/?v=latest", auth=auth, timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Basic Realm=RestSvc"
    assert TOKEN not in response.headers
    root = parse_xml(response.content)
    assert root.tag == Q + "Error"
    assert root.get("StatusCode") == "401"
    assert root.get("Message")
    assert em.stats.failed_logons == 1
    assert em.stats.logons == 0


def test_user_name_is_case_insensitive_password_is_not(em: SimulatedEM) -> None:
    ok = requests.post(
        em.url + "/api/sessionMngr/", auth=("corp\\SVC_MONITORING", "demo"), timeout=10
    )
    assert ok.status_code == 201
    bad = requests.post(
        em.url + "/api/sessionMngr/", auth=("corp\\svc_monitoring", "DEMO"), timeout=10
    )
    assert bad.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/api/systemSessions",
        "/api/systemSessions?format=Entity",
        "/api/logonSessions",
        "/api/systemSessions/00000000-0000-4000-8000-000000000000",
    ],
)
def test_missing_or_unknown_token_is_401_with_an_error_body(em: SimulatedEM, path: str) -> None:
    for token in (None, "bm9wZQ==", ""):
        response = get(em, path, token)
        assert response.status_code == 401
        root = parse_xml(response.content)
        assert root.tag == f"{{{NS}}}Error"
        assert root.get("StatusCode") == "401"


def test_401_in_json_pascal_and_camel(em: SimulatedEM) -> None:
    response = get(em, "/api/systemSessions", None, Accept="application/json")
    assert response.json() == {
        "FirstChanceExceptionMessage": None,
        "Message": response.json()["Message"],
        "StackTrace": None,
        "Status": None,
        "StatusCode": 401,
    }
    em.set(json_casing="camel")
    camel = get(em, "/api/systemSessions", None, Accept="application/json").json()
    assert list(camel) == [
        "firstChanceExceptionMessage",
        "message",
        "stackTrace",
        "status",
        "statusCode",
    ]


def test_cookie_wins_over_header(em: SimulatedEM) -> None:
    token = logon(em)
    url = em.url + "/api/systemSessions?format=Entity"
    good_header_bad_cookie = requests.get(
        url, headers={TOKEN: token, "Cookie": f"{TOKEN}=bm9wZQ=="}, timeout=10
    )
    assert good_header_bad_cookie.status_code == 401
    bad_header_good_cookie = requests.get(
        url, headers={TOKEN: "bm9wZQ==", "Cookie": f"{TOKEN}={token}"}, timeout=10
    )
    assert bad_header_good_cookie.status_code == 200
    cookie_only = requests.get(url, cookies={TOKEN: token}, timeout=10)
    assert cookie_only.status_code == 200


def test_header_name_is_case_insensitive(em: SimulatedEM) -> None:
    token = logon(em)
    response = requests.get(
        em.url + "/api/systemSessions", headers={"x-restsvcsessionid": token}, timeout=10
    )
    assert response.status_code == 200


def test_idle_expiry_follows_the_clock_and_each_request_refreshes(clock: ManualClock) -> None:
    settings = SimulatorSettings(history_days=0, token_idle_expiry=900)
    with SimulatedEM(settings, clock=clock) as em:
        token = logon(em)
        for _ in range(3):
            clock.advance(seconds=899)
            assert get(em, "/api/systemSessions", token).status_code == 200
        assert em.stats.active_tokens() == 1
        clock.advance(seconds=901)
        assert get(em, "/api/systemSessions", token).status_code == 401
        assert em.stats.active_tokens() == 0
        em.set(token_idle_expiry=30)
        fresh = logon(em)
        clock.advance(seconds=31)
        assert get(em, "/api/systemSessions", fresh).status_code == 401


def test_idle_expiry_ignores_the_speed_up(clock: ManualClock) -> None:
    settings = SimulatorSettings(history_days=0, token_idle_expiry=900, speed=60)
    with SimulatedEM(settings, clock=clock) as em:
        token = logon(em)
        clock.advance(seconds=600)  # ten real minutes, ten simulated hours
        assert get(em, "/api/systemSessions", token).status_code == 200


def test_expire_tokens_forces_a_new_logon(em: SimulatedEM) -> None:
    first, second = logon(em), logon(em)
    em.expire_tokens()
    assert get(em, "/api/systemSessions", first).status_code == 401
    assert get(em, "/api/systemSessions", second).status_code == 401
    assert get(em, "/api/systemSessions", logon(em)).status_code == 200
    assert em.stats.logons == 3


def test_logout_then_the_token_is_dead(em: SimulatedEM) -> None:
    response = requests.post(em.url + "/api/sessionMngr/?v=latest", auth=AUTH, timeout=10)
    token = response.headers[TOKEN]
    session_id = text(parse_xml(response.content), "SessionId")
    deleted = requests.delete(
        f"{em.url}/api/logonSessions/{session_id}", headers={TOKEN: token}, timeout=10
    )
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert get(em, "/api/systemSessions", token).status_code == 401
    again = requests.delete(
        f"{em.url}/api/logonSessions/{session_id}", headers={TOKEN: token}, timeout=10
    )
    assert again.status_code == 401
    assert em.stats.logouts == 1
    assert em.stats.requests_by_route["DELETE /api/logonSessions"] == 2


def test_deleting_an_unknown_logon_session_is_404(em: SimulatedEM) -> None:
    token = logon(em)
    response = requests.delete(
        em.url + "/api/logonSessions/00000000-0000-4000-8000-000000000000",
        headers={TOKEN: token},
        timeout=10,
    )
    assert response.status_code == 404
    assert parse_xml(response.content).get("StatusCode") == "404"


def test_logon_sessions_list_and_item(em: SimulatedEM) -> None:
    token = logon(em)
    logon(em)
    listing = parse_xml(get(em, "/api/logonSessions", token).content)
    assert listing.tag == Q + "LogonSessions"
    ids = [text(item, "SessionId") for item in listing.findall(Q + "LogonSession")]
    assert len(ids) == 2
    one = get(em, f"/api/logonSessions/{ids[0]}", token)
    assert one.status_code == 200
    assert parse_xml(one.content).tag == Q + "LogonSession"
    # Other clients report that a real EM answers 500 for an unknown id here.
    assert (
        get(em, "/api/logonSessions/00000000-0000-4000-8000-000000000000", token).status_code == 500
    )


def test_unknown_route_is_404_and_wrong_method_is_405(em: SimulatedEM) -> None:
    token = logon(em)
    missing = get(em, "/api/repositories", token)
    assert missing.status_code == 404
    assert parse_xml(missing.content).get("StatusCode") == "404"
    assert requests.get(em.url + "/nothing", timeout=10).status_code == 404
    wrong = requests.post(em.url + "/api/systemSessions", headers={TOKEN: token}, timeout=10)
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "GET"
    assert requests.get(em.url + "/api/sessionMngr/", timeout=10).status_code == 405
    assert requests.put(em.url + "/api/", timeout=10).status_code == 405


def test_head_answers_without_a_body(em: SimulatedEM) -> None:
    response = requests.head(em.url + "/api/", timeout=10)
    assert response.status_code == 405
    assert response.content == b""


def test_ipv6_loopback(clock: ManualClock) -> None:
    import socket

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 cannot be bound on this machine")
    with SimulatedEM(SimulatorSettings(history_days=0, host="::1"), clock=clock) as em:
        assert em.url.startswith("http://[::1]:")
        response = requests.get(em.url + "/api/", timeout=10)
        assert response.status_code == 200
        assert f"{em.url}/api/sessionMngr/?v=latest" in response.text
