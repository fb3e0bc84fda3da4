"""/api/backupSessions, /api/replicaSessions and the job-session representations, checked
against Veeam's documented example and the key order of real v12/v13 answers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from lxml import etree

from exporter.simulator import SimJobSession, SimulatedEM, SimulatorSettings

from .helpers import ManualClock, Q, get, logon, parse_xml, text

# Veeam's documented example of GET /api/backupSessions/{ID}?format=Entity (hosts shortened).
REFERENCE = b"""<BackupJobSession xmlns:xsd="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 Href="https://em:9398/api/backupSessions/a057c2c3-f3bd-4ab4-9fb7-24058cccb4f6?format=Entity"
 Type="BackupJobSession" Name="Backup Job 3@2025-09-24 20:00:09"
 UID="urn:veeam:BackupJobSession:a057c2c3-f3bd-4ab4-9fb7-24058cccb4f6" xmlns="http://www.veeam.com/ent/v1.0">
  <Links>
    <Link Href="https://em:9398/api/backupServers/a490c017-2c1c-40ee-8bcf-73bcce6ab36f" Name="enterprise01.tech.local" Type="BackupServerReference" Rel="Up" />
    <Link Href="https://em:9398/api/jobs/2b078668-e45d-4eb3-abb0-275b0d130e7e" Name="Backup Job 3" Type="JobReference" Rel="Up" />
    <Link Href="https://em:9398/api/backupSessions/a057c2c3-f3bd-4ab4-9fb7-24058cccb4f6" Name="Backup Job 3@2025-09-24 20:00:09" Type="BackupJobSessionReference" Rel="Alternate" />
    <Link Href="https://em:9398/api/backupSessions/a057c2c3-f3bd-4ab4-9fb7-24058cccb4f6/taskSessions" Type="BackupTaskSessionReferenceList" Rel="Down" />
    <Link Href="https://em:9398/api/backupSessions/a057c2c3-f3bd-4ab4-9fb7-24058cccb4f6?action=stop" Rel="Stop" />
    <Link Href="https://em:9398/api/restorePoints/a5eed1d4-cf03-4ab5-bc63-deffcfeb728c" Name="" Type="RestorePointReference" Rel="Related" />
  </Links>
  <JobUid>urn:veeam:Job:2b078668-e45d-4eb3-abb0-275b0d130e7e</JobUid>
  <JobName>Backup Job 3</JobName>
  <JobType>Backup</JobType>
  <CreationTimeUTC>2025-09-24T20:00:09.607Z</CreationTimeUTC>
  <EndTimeUTC>2025-09-24T20:02:54.717Z</EndTimeUTC>
  <State>Stopped</State>
  <Result>Success</Result>
  <Progress>100</Progress>
  <IsRetry>false</IsRetry>
</BackupJobSession>"""
# The key order of every entry of the real v12 and v13 captures.
JSON_KEYS = [
    "IsRetry",
    "JobUid",
    "JobName",
    "JobType",
    "CreationTimeUTC",
    "EndTimeUTC",
    "State",
    "Result",
    "Progress",
    "FailureMessage",
    "Name",
    "UID",
    "Links",
    "Href",
    "Type",
]


@pytest.fixture(scope="module")
def rem() -> Iterator[SimulatedEM]:
    with SimulatedEM(SimulatorSettings(live=False), clock=ManualClock()) as em:
        yield em


@pytest.fixture
def token(rem: SimulatedEM) -> str:
    return logon(rem)


def one(rem: SimulatedEM, job_name: str, *, finished: bool = True) -> SimJobSession:
    return next(
        s
        for s in reversed(rem.job_sessions())
        if s.job_name == job_name and s.finished == finished and s.result != "Failed"
    )


Shape = tuple[list[str], list[str], list[tuple[str | None, str | None, list[str]]]]


def shape(element: etree._Element) -> Shape:
    links = element.find(Q + "Links")
    assert links is not None
    return (
        [str(a) for a in element.attrib],
        [etree.QName(c).localname for c in element],
        [(link.get("Rel"), link.get("Type"), [str(a) for a in link.attrib]) for link in links],
    )


def test_an_entity_has_the_shape_of_veeams_example(rem: SimulatedEM, token: str) -> None:
    s = one(rem, "Linux Servers Backup")
    response = get(rem, f"/api/backupSessions/{s.id}?format=Entity", token)
    assert response.status_code == 200
    root = parse_xml(response.content)
    reference = etree.fromstring(REFERENCE)
    attrs, children, links = shape(root)
    ref_attrs, ref_children, ref_links = shape(reference)
    assert (attrs, children) == (ref_attrs, ref_children)
    assert links[:5] == ref_links[:5]
    related = links[5:]
    assert len(related) == s.restore_points == 4
    assert all(r[:2] == ("Related", "RestorePointReference") for r in related)
    assert root.get("Name") == s.name and root.get("UID") == s.uid
    assert text(root, "JobUid") == f"urn:veeam:Job:{s.job_uid}"
    assert text(root, "Result") == s.result and text(root, "IsRetry") == "false"
    server, job = root.find(Q + "Links")[:2]  # type: ignore[index]
    assert server.get("Name") == "vbr02.corp.local"
    assert server.get("Href", "").endswith(f"/api/backupServers/{s.backup_server_uid}")
    assert job.get("Href", "").endswith(f"/api/jobs/{s.job_uid}") and job.get("Name") == s.job_name
    point_name = root.find(Q + "Links")[5].get("Name")  # type: ignore[index]
    assert (
        point_name
        == f"{s.created:%b} {s.created.day:2d} {s.created.year} {(s.created.hour % 12 or 12):2d}:{s.created:%M%p}"
    )


def test_a_running_entity_has_no_end_time(rem: SimulatedEM, token: str) -> None:
    s = one(rem, "Copy to DR", finished=False)
    root = parse_xml(get(rem, f"/api/backupSessions/{s.id}?format=Entity", token).content)
    names = [etree.QName(c).localname for c in root]
    assert "EndTimeUTC" not in names and "FailureMessage" not in names
    assert (text(root, "State"), text(root, "Result"), text(root, "Progress")) == (
        "Working",
        "None",
        "0",
    )
    body = get(
        rem, f"/api/backupSessions/{s.id}?format=Entity", token, Accept="application/json"
    ).json()
    assert list(body) == JSON_KEYS
    assert body["EndTimeUTC"] is None and body["FailureMessage"] is None
    assert body["JobType"] == "ImmediateBackupCopy"


def test_json_keys_in_both_casings_and_v13_names(rem: SimulatedEM, token: str) -> None:
    s = one(rem, "Daily VM Backup")
    path = f"/api/backupSessions/{s.id}?format=Entity"
    pascal = get(rem, path, token, Accept="application/json").json()
    assert list(pascal) == JSON_KEYS
    # v12 job-session times have at most three fraction digits (SQL Server datetime).
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z", pascal["CreationTimeUTC"])
    assert pascal["Links"][0] == {
        "Rel": "Up",
        "Href": pascal["Links"][0]["Href"],
        "Name": "vbr01.corp.local",
        "Type": "BackupServerReference",
    }
    assert pascal["Links"][4] == {
        "Rel": "Stop",
        "Href": pascal["Links"][4]["Href"],
        "Name": None,
        "Type": None,
    }
    rem.set(json_casing="camel", em_version="13")
    try:
        camel = get(rem, path, token, Accept="application/json").json()
        assert list(camel) == [k[0].lower() + k[1:] if k != "UID" else "uid" for k in JSON_KEYS]
        assert camel["state"] == "Stopped" and camel["links"][0]["type"] == "BackupServerReference"
        v13 = next(x for x in rem.job_sessions() if x.id == s.id)  # six digits kept
        assert v13.created.microsecond % 1000 != 0 and s.created.microsecond % 1000 == 0
        stamp = v13.created.isoformat(sep=" ", timespec="microseconds")[:26].rstrip("0").rstrip(".")
        assert camel["name"] == f"Daily VM Backup@{stamp}"
        assert camel["links"][5]["name"] == stamp  # v13 restore point names
    finally:
        rem.set(json_casing="pascal", em_version="12")


def test_an_agent_child_links_its_parent_session(rem: SimulatedEM, token: str) -> None:
    child = next(s for s in rem.job_sessions() if s.job_type == "AgentManagement")
    body = get(
        rem, f"/api/backupSessions/{child.id}?format=Entity", token, Accept="application/json"
    ).json()
    ups = [link for link in body["Links"] if link["Rel"] == "Up"]
    assert [u["Type"] for u in ups] == [
        "BackupServerReference",
        "JobReference",
        "BackupJobSessionReference",
    ]
    assert ups[1]["Href"].endswith(f"/api/agents/jobs/{child.job_uid}")
    assert ups[2]["Name"] == "Parent session" and ups[2]["Href"].endswith(
        f"/api/backupSessions/{child.parent_id}"
    )
    parent = get(
        rem,
        f"/api/backupSessions/{child.parent_id}?format=Entity",
        token,
        Accept="application/json",
    ).json()
    children_link = next(
        link for link in parent["Links"] if link["Type"] == "BackupJobSessionReferenceList"
    )
    assert children_link["Rel"] == "Alternate" and children_link["Href"].endswith(
        "/agentManagementSessions"
    )
    refs = get(
        rem,
        f"/api/backupSessions/{child.parent_id}/agentManagementSessions",
        token,
        Accept="application/json",
    ).json()
    kids = {s.id for s in rem.job_sessions() if s.parent_id == child.parent_id}
    assert {r["UID"].rsplit(":", 1)[1] for r in refs["Refs"]} == kids and child.id in kids


def test_a_reference_and_the_plain_lists(rem: SimulatedEM, token: str) -> None:
    s = one(rem, "File Share Backup")
    ref = parse_xml(get(rem, f"/api/backupSessions/{s.id}", token).content)
    assert etree.QName(ref).localname == "EntityRef"
    assert ref.get("Type") == "BackupJobSessionReference" and ref.get("Name") == s.name
    links = ref.find(Q + "Links")
    assert links is not None
    assert [(link.get("Rel"), link.get("Type")) for link in links] == [
        ("Up", "BackupServerReference"),
        ("Up", "JobReference"),
        ("Alternate", "BackupJobSession"),
        ("Down", "BackupTaskSessionReferenceList"),
    ]
    assert links[2].get("Href", "").endswith("?format=Entity")
    listed = parse_xml(get(rem, "/api/backupSessions", token).content)
    assert etree.QName(listed).localname == "EntityReferences"
    everything = [x.id for x in rem.job_sessions()]
    assert [r.get("UID", "").rsplit(":", 1)[1] for r in listed] == everything
    entities = parse_xml(get(rem, "/api/backupSessions?format=Entity", token).content)
    assert etree.QName(entities).localname == "BackupJobSessions"
    assert {etree.QName(c).localname for c in entities} == {"BackupJobSession"}
    assert len(entities) == len(everything)
    data = get(rem, "/api/backupSessions?format=entity", token, Accept="application/json").json()
    assert list(data) == ["BackupJobSessions"] and len(data["BackupJobSessions"]) == len(everything)


def test_task_sessions_of_a_session(rem: SimulatedEM, token: str) -> None:
    s = one(rem, "Daily VM Backup")
    xml = parse_xml(
        get(rem, f"/api/backupSessions/{s.id}/taskSessions?format=Entity", token).content
    )
    assert etree.QName(xml).localname == "BackupTaskSessions"
    tasks = list(xml)
    assert [t.get("VmDisplayName") for t in tasks] == [
        "app01",
        "app02",
        "dc01",
        "dc02",
        "file01",
        "print01",
    ]
    first = tasks[0]
    assert [etree.QName(c).localname for c in first] == [
        "Links",
        "JobSessionUid",
        "CreationTimeUTC",
        "EndTimeUTC",
        "State",
        "Result",
        "Reason",
        "TotalSize",
        "VmUid",
    ]
    assert text(first, "JobSessionUid") == s.uid and text(first, "State") == "Completed"
    refs = get(
        rem, f"/api/backupSessions/{s.id}/taskSessions", token, Accept="application/json"
    ).json()
    assert [r["Type"] for r in refs["Refs"]] == ["BackupTaskSessionReference"] * 6
    failed = next(x for x in rem.job_sessions() if x.result == "Failed" and x.job_type == "Backup")
    entities = get(
        rem,
        f"/api/backupSessions/{failed.id}/taskSessions?format=Entity",
        token,
        Accept="application/json",
    ).json()
    assert any(
        t["Result"] == "Failed" and t["Reason"].strip() for t in entities["BackupTaskSessions"]
    )
    assert all(
        t["Reason"] == "" for t in entities["BackupTaskSessions"] if t["Result"] == "Success"
    )
    assert list(entities["BackupTaskSessions"][0])[:3] == [
        "JobSessionUid",
        "CreationTimeUTC",
        "EndTimeUTC",
    ]


def test_replica_sessions(rem: SimulatedEM, token: str) -> None:
    s = rem.job_sessions("ReplicaJobSession")[0]
    body = get(
        rem, f"/api/replicaSessions/{s.id}?format=Entity", token, Accept="application/json"
    ).json()
    assert (
        body["Type"] == "ReplicaJobSession" and body["UID"] == f"urn:veeam:ReplicaJobSession:{s.id}"
    )
    assert body["JobType"] == "Replica"
    assert [link["Rel"] for link in body["Links"]] == ["Up", "Up", "Alternate", "Down"]  # no Stop
    assert body["Links"][3]["Type"] == "ReplicaTaskSessionReferenceList"
    listed = get(rem, "/api/replicaSessions?format=Entity", token, Accept="application/json").json()
    assert len(listed["ReplicaJobSessions"]) == len(rem.job_sessions("ReplicaJobSession"))
    assert get(rem, f"/api/backupSessions/{s.id}", token).status_code == 404


def test_unknown_sessions_are_a_404_error(rem: SimulatedEM, token: str) -> None:
    missing = get(
        rem, "/api/backupSessions/00000000-0000-0000-0000-000000000000?format=Entity", token
    )
    assert missing.status_code == 404
    assert parse_xml(missing.content).get("StatusCode") == "404"
    for path in ("/taskSessions", "/agentManagementSessions"):
        assert get(rem, f"/api/backupSessions/nope{path}", token).status_code == 404
    assert get(rem, "/api/replicaSessions/nope", token).status_code == 404
    assert get(rem, "/api/backupSessions", None).status_code == 401
    assert (
        json.loads(get(rem, "/api/backupSessions/x", token, Accept="application/json").content)[
            "StatusCode"
        ]
        == 404
    )
