"""The /_sim control API used to drive a standalone simulator."""

from __future__ import annotations

import requests

from exporter.simulator import SimulatedEM

from .helpers import T0, get, logon, parse_xml

LIST = "/api/systemSessions?format=Entity"


def control(em: SimulatedEM, method: str, path: str, **kw: object) -> requests.Response:
    return requests.request(method, em.url + "/_sim" + path, timeout=10, **kw)  # type: ignore[arg-type]


def test_faults_by_control_api(em: SimulatedEM) -> None:
    token = logon(em)
    response = control(em, "POST", "/faults?fault=503&count=2")
    assert response.status_code == 200
    assert response.json()["pending_faults"]["systemSessions"] == ["503", "503"]
    assert [get(em, LIST, token).status_code for _ in range(3)] == [503, 503, 200]
    control(em, "POST", "/faults?fault=500&count=3")
    assert control(em, "DELETE", "/faults").status_code == 204
    assert get(em, LIST, token).status_code == 200
    control(em, "POST", "/faults?fault=401&target=logon")
    assert (
        requests.post(
            em.url + "/api/sessionMngr/", auth=("CORP\\svc_monitoring", "demo"), timeout=10
        ).status_code
        == 401
    )


def test_bad_fault_requests(em: SimulatedEM) -> None:
    assert control(em, "POST", "/faults?fault=nope").status_code == 400
    assert control(em, "POST", "/faults?fault=500&count=x").status_code == 400
    assert control(em, "POST", "/faults?fault=500&target=x").status_code == 400


def test_expire_by_control_api(em: SimulatedEM) -> None:
    token = logon(em)
    assert control(em, "POST", "/expire").status_code == 204
    assert get(em, LIST, token).status_code == 401


def test_stats_by_control_api_are_not_counted(em: SimulatedEM) -> None:
    get(em, LIST, logon(em))
    stats = control(em, "GET", "/stats").json()
    assert stats["requests_by_route"] == {"POST /api/sessionMngr": 1, "GET /api/systemSessions": 1}
    assert stats["logons"] == 1 and stats["active_tokens"] == 1
    assert control(em, "GET", "/stats").json()["requests_by_route"] == stats["requests_by_route"]


def test_settings_by_control_api(em: SimulatedEM) -> None:
    current = control(em, "GET", "/settings").json()
    assert current["password"] == "***"
    changed = control(em, "POST", "/settings", json={"json_casing": "camel", "bom": True})
    assert changed.status_code == 200
    assert (changed.json()["json_casing"], changed.json()["bom"]) == ("camel", True)
    body = get(em, LIST, logon(em), Accept="application/json").content
    assert body.startswith(b'\xef\xbb\xbf{"sessions"')
    assert control(em, "POST", "/settings", json={"seed": 3}).status_code == 400
    assert control(em, "POST", "/settings", data=b"not json").status_code == 400
    assert control(em, "POST", "/settings", json=[1]).status_code == 400


def test_sessions_by_control_api(em: SimulatedEM) -> None:
    listing = control(em, "GET", "/sessions").json()
    assert len(listing["sessions"]) == len(em.sessions())
    assert listing["now"] == "2025-03-10T12:00:00.123456Z"

    created = control(
        em,
        "POST",
        "/sessions",
        json={"session_type": "LogExport", "created": "2025-03-10T11:00:00Z"},
    )
    assert created.status_code == 201
    added = created.json()
    assert (added["state"], added["ended"], added["created"]) == (
        "InProgress",
        None,
        "2025-03-10T11:00:00Z",
    )

    finished = control(
        em, "POST", f"/sessions/{added['id']}/finish", json={"state": "Failed", "message": "x"}
    )
    assert finished.json()["state"] == "Failed"
    assert finished.json()["ended"] == "2025-03-10T12:00:00.123456Z"
    token = logon(em)
    entity = parse_xml(get(em, f"/api/systemSessions/{added['id']}?format=Entity", token).content)
    assert entity.get("Name", "").startswith("LogExport @2025-03-10 11:00:00.000000")

    assert control(em, "DELETE", f"/sessions/{added['id']}").status_code == 204
    assert control(em, "DELETE", f"/sessions/{added['id']}").status_code == 404
    assert control(em, "POST", "/sessions", json={}).status_code == 400
    assert (
        control(
            em, "POST", "/sessions", json={"session_type": "X", "created": "yesterday"}
        ).status_code
        == 400
    )
    assert T0.tzinfo is not None


def test_unknown_control_path(em: SimulatedEM) -> None:
    assert control(em, "GET", "/nothing").status_code == 404
    assert control(em, "GET", "/faults").status_code == 404


def test_remote_clients_do_not_see_the_control_api(em: SimulatedEM) -> None:
    from email.message import Message

    from exporter.simulator.control import Control, is_loopback
    from exporter.simulator.core import SimCore
    from exporter.simulator.messages import Request
    from exporter.simulator.settings import SimulatorSettings

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("10.0.0.5") and not is_loopback("localhost")
    core = SimCore(SimulatorSettings(history_days=0), None)
    request = Request("POST", "/_sim/expire", Message(), b"", "10.0.0.5", "http", "192.0.2.1", 1)
    assert Control(core).handle(request).status == 404
