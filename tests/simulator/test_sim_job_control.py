"""Driving job sessions: the records, the control API, faults on the job routes only, and
the request counters per route, per logon and per request."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from exporter.simulator import FAULTS_FOR, SimulatedEM

from .helpers import T0, get, job_query, logon, query_uids

SYSTEM = "/api/systemSessions?format=Entity"
QUERY_KEY = "GET /api/query?type=BackupJobSession"


def control(em: SimulatedEM, method: str, path: str, **kw: object) -> requests.Response:
    return requests.request(method, em.url + "/_sim" + path, timeout=10, **kw)  # type: ignore[arg-type]


def test_records_by_control_api(em: SimulatedEM) -> None:
    jobs = control(em, "GET", "/jobs").json()["jobs"]
    assert [j["uid"] for j in jobs] == [j.uid for j in em.jobs()]
    assert set(jobs[0]) == {
        "uid",
        "name",
        "job_type",
        "session_type",
        "backup_server",
        "backup_server_uid",
        "parent_uid",
        "objects",
    }
    listing = control(em, "GET", "/job_sessions").json()
    assert listing["now"] == "2025-03-10T12:00:00.123456Z"
    assert set(listing["collections"]) == {"vbr01.corp.local", "vbr02.corp.local"}
    records = listing["sessions"]
    assert [r["id"] for r in records] == [s.id for s in em.job_sessions()]
    first, mine = records[0], em.job_sessions()[0]
    assert first == {
        "id": mine.id,
        "uid": mine.uid,
        "session_type": "BackupJobSession",
        "name": mine.name,
        "job_uid": mine.job_uid,
        "job_name": mine.job_name,
        "job_type": mine.job_type,
        "backup_server": mine.backup_server,
        "backup_server_uid": mine.backup_server_uid,
        "created": mine.created.isoformat().replace("+00:00", "Z"),
        "ended": mine.ended.isoformat().replace("+00:00", "Z") if mine.ended else None,
        "state": mine.state,
        "result": mine.result,
        "progress": mine.progress,
        "is_retry": mine.is_retry,
        "parent_id": mine.parent_id,
        "restore_points": mine.restore_points,
        "failure_message": None,
    }
    replicas = control(em, "GET", "/job_sessions?type=ReplicaJobSession").json()["sessions"]
    assert {r["job_type"] for r in replicas} == {"Replica"}
    assert control(em, "GET", "/job_sessions?type=Nope").status_code == 400


def test_changes_by_control_api(em: SimulatedEM) -> None:
    created = control(
        em,
        "POST",
        "/job_sessions",
        json={
            "job": "Exchange Backup",
            "state": "Postprocessing",
            "created": "2025-03-10T11:00:00Z",
            "job_type": "SomethingNew",
            "failure_message": "odd",
        },
    )
    assert created.status_code == 201
    added = created.json()
    assert (added["state"], added["result"], added["ended"], added["job_type"]) == (
        "Postprocessing",
        "None",
        None,
        "SomethingNew",
    )
    assert added["name"] == "Exchange Backup@2025-03-10 11:00:00"
    uncollected = control(em, "GET", "/job_sessions?uncollected=true").json()["sessions"]
    assert added["id"] in {r["id"] for r in uncollected}
    assert added["id"] not in {
        r["id"] for r in control(em, "GET", "/job_sessions").json()["sessions"]
    }
    collected = control(em, "POST", "/collect?backup_server=vbr01.corp.local").json()["collections"]
    assert collected["vbr01.corp.local"] == "2025-03-10T12:00:00.123456Z"
    assert added["id"] in {r["id"] for r in control(em, "GET", "/job_sessions").json()["sessions"]}

    finished = control(em, "POST", f"/job_sessions/{added['id']}/finish", json={"result": "Failed"})
    assert finished.status_code == 200
    assert (finished.json()["state"], finished.json()["result"]) == ("Stopped", "Failed")
    assert control(em, "DELETE", f"/job_sessions/{added['id']}").status_code == 204
    assert control(em, "POST", "/collect").status_code == 200
    assert added["id"] not in {
        r["id"] for r in control(em, "GET", "/job_sessions").json()["sessions"]
    }
    assert control(em, "DELETE", f"/job_sessions/{added['id']}").status_code == 404
    assert control(em, "POST", "/job_sessions", json={}).status_code == 400
    assert control(em, "POST", "/job_sessions", json={"job": "No Such Job"}).status_code == 400
    assert control(em, "POST", "/collect?backup_server=nope").status_code == 400


def test_duplicate_uids_and_odd_values_by_hand(em: SimulatedEM) -> None:
    token = logon(em)
    first = em.add_job_session("SQL Servers Backup", created=T0 - timedelta(minutes=5))
    second = em.add_job_session(
        "SQL Servers Backup",
        session_id=first.id,
        state="Stopped",
        result="None",
        created=first.created,
        job_name="SQL\\\\Servers",
    )
    em.collect()
    answer = [s for s in em.job_sessions() if s.id == first.id]
    assert answer == [first, second]  # both, in the order added
    body = job_query(em, token, f"filter=UID=={first.id}").json()
    entries = body["Entities"]["BackupJobSessions"]["BackupJobSessions"]
    assert [(e["State"], e["Result"], e["JobName"]) for e in entries] == [
        ("Working", "None", "SQL Servers Backup"),
        ("Stopped", "None", "SQL\\\\Servers"),
    ]
    assert entries[1]["EndTimeUTC"] is None  # Stopped without an end time


def test_faults_on_the_query_route_spare_the_system_sessions(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("500", count=2, target="query")
    assert job_query(em, token, "").status_code == 500
    assert get(em, SYSTEM, token).status_code == 200
    assert get(em, "/api/backupSessions", token).status_code == 200
    assert job_query(em, token, "").status_code == 500
    assert job_query(em, token, "").status_code == 200
    em.inject("503", target="backupSessions")
    assert job_query(em, token, "").status_code == 200
    assert get(em, "/api/backupSessions/x", token).status_code == 503
    assert em.stats.faults_served == {"500": 2, "503": 1}


def test_a_fault_in_the_middle_of_paging(em: SimulatedEM) -> None:
    token = logon(em)
    em.inject("503", target="query", page=2)
    em.inject("reset", target="query")  # waits behind the page-2 fault
    assert job_query(em, token, "pageSize=5&page=1").status_code == 200
    assert job_query(em, token, "pageSize=5").status_code == 200  # page 1 by default
    assert job_query(em, token, "pageSize=5&page=2").status_code == 503
    with pytest.raises(requests.ConnectionError):
        job_query(em, token, "pageSize=5&page=3")
    assert job_query(em, token, "pageSize=5&page=2").status_code == 200
    with pytest.raises(ValueError, match="query target"):
        em.inject("500", page=2)


def test_answer_faults_of_the_job_routes(em: SimulatedEM) -> None:
    token = logon(em)
    normal = query_uids(em, token, "pageSize=4")
    em.inject("duplicate", target="query")
    assert query_uids(em, token, "pageSize=4") == [*normal, normal[0]]
    em.inject("flip_casing", target="query")
    flipped = job_query(em, token, "pageSize=4").json()
    assert "entities" in flipped and "Entities" not in flipped
    em.inject("empty", target="query")
    empty = job_query(em, token, "pageSize=4").json()
    assert empty["Entities"]["BackupJobSessions"]["BackupJobSessions"] == []
    assert empty["PagingInfo"]["PagesCount"] == 0
    em.inject("empty", target="backupSessions")
    assert get(em, "/api/backupSessions", token, Accept="application/json").json() == {"Refs": []}
    em.inject("401", target="query")
    assert job_query(em, token, "").status_code == 401
    assert job_query(em, token, "").status_code == 200  # the token still works
    em.inject("403", target="query")
    denied = job_query(em, token, "")
    assert denied.status_code == 403
    assert denied.json()["Message"] == "Access denied."
    assert job_query(em, token, "").status_code == 200  # the token still works
    assert "duplicate" not in FAULTS_FOR["systemSessions"]
    assert "403" not in FAULTS_FOR["systemSessions"]
    assert set(FAULTS_FOR["query"]) == set(FAULTS_FOR["systemSessions"]) | {
        "403",
        "duplicate",
        "flip_casing",
    }
    with pytest.raises(ValueError, match="does not apply"):
        em.inject("duplicate")


def test_faults_by_control_api_for_a_page(em: SimulatedEM) -> None:
    token = logon(em)
    response = control(em, "POST", "/faults?fault=500&target=query&page=3")
    assert response.json()["pending_faults"]["query"] == ["500"]
    assert job_query(em, token, "pageSize=2&page=1").status_code == 200
    assert job_query(em, token, "pageSize=2&page=3").status_code == 500
    assert control(em, "POST", "/faults?fault=500&target=query&page=x").status_code == 400
    assert control(em, "POST", "/faults?fault=500&page=2").status_code == 400


def test_counters_per_route_logon_and_request(em: SimulatedEM) -> None:
    first = logon(em)
    get(em, SYSTEM, first)
    job_query(em, first, "filter=State!=Stopped")
    job_query(em, first, "pageSize=3&page=2")
    job_query(em, first, "", kind="ReplicaJobSession")
    get(em, "/api/backupSessions/x?format=Entity", first)
    second = logon(em)
    get(em, SYSTEM, second)
    get(em, "/api/query", second)
    routes = em.stats.requests_by_route
    assert routes[QUERY_KEY] == 2
    assert routes["GET /api/query?type=ReplicaJobSession"] == 1
    assert routes["GET /api/query?type=(none)"] == 1
    assert routes["GET /api/backupSessions/{id}"] == 1
    assert routes["GET /api/systemSessions"] == 2
    by_logon = em.stats.requests_by_logon
    assert len(by_logon) == 2
    one, two = (by_logon[k] for k in sorted(by_logon, key=lambda k: -sum(by_logon[k].values())))
    assert one == {
        "GET /api/systemSessions": 1,
        QUERY_KEY: 2,
        "GET /api/query?type=ReplicaJobSession": 1,
        "GET /api/backupSessions/{id}": 1,
    }
    assert two == {"GET /api/systemSessions": 1, "GET /api/query?type=(none)": 1}
    recent = em.stats.recent_requests()
    queries = [r["target"] for r in recent if r["route"] == QUERY_KEY]
    assert queries == [
        "/api/query?type=BackupJobSession&format=Entities&filter=State!=Stopped",
        "/api/query?type=BackupJobSession&format=Entities&pageSize=3&page=2",
    ]
    stats = control(em, "GET", "/stats").json()
    assert stats["requests_by_logon"] == by_logon
    assert stats["recent_requests"][-1]["target"] == "/api/query"


def test_job_settings_by_control_api(em: SimulatedEM) -> None:
    changed = control(em, "POST", "/settings", json={"em_version": "13", "query_empty": "null"})
    assert changed.status_code == 200
    assert (changed.json()["em_version"], changed.json()["query_empty"]) == ("13", "null")
    assert control(em, "POST", "/settings", json={"jobs": 5}).status_code == 400
    assert control(em, "POST", "/settings", json={"em_version": 13}).status_code == 400
    assert control(em, "POST", "/settings", json={"job_visibility": "sometimes"}).status_code == 400
    em.set(job_visibility="immediate")
    assert em.job_sessions() == em.job_sessions(uncollected=True)
