"""The job-session parser: Veeam's documented XML, the v12/v13 JSON shapes, casings, hostility.

entity.xml is Veeam's documented BackupJobSession verbatim; query.xml is the documented
QueryResult with its elided links filled in and a running session beside it (the documented
running shape: State Working, Result None, no EndTimeUTC). query_v12.json and query_v13.json
are rebuilt from the documented shape of the real captures (key order, the 50 Entities slots,
PagingInfo, v13's camelCase keys with PascalCase values), with their field values.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import IO

import pytest

from exporter.jobsessions.parse import (
    JOB_NAME_LIMIT,
    JSON_VALUE_LIMIT,
    Entry,
    JobSessionRecord,
    read_entity,
    read_query,
)
from exporter.jobsessions.plan import Paging
from exporter.parse import STALL_LIMIT, ParseError, UnreadableEntry, parse_timestamp

JOBS = Path(__file__).parent / "fixtures" / "jobs"
NS = 'xmlns="http://www.veeam.com/ent/v1.0"'


def ts(text: str) -> float:
    value = parse_timestamp(text)
    assert value is not None
    return value


def query(body: bytes, fmt: str = "xml") -> tuple[list[Entry], Paging | None]:
    answer = read_query(io.BytesIO(body), fmt)  # type: ignore[arg-type]
    entries = list(answer)
    return entries, answer.paging


def records(body: bytes, fmt: str = "xml") -> list[JobSessionRecord]:
    entries, _ = query(body, fmt)
    assert all(isinstance(e, JobSessionRecord) for e in entries), entries
    return entries  # type: ignore[return-value]


def xml_session(*fields: str, uid: str = "urn:veeam:BackupJobSession:1", links: str = "") -> str:
    return (
        f'<BackupJobSession UID="{uid}"><Links>{links}</Links>{"".join(fields)}</BackupJobSession>'
    )


def xml_query(*sessions: str, paging: str = "") -> bytes:
    return (
        f"<QueryResult {NS}><Entities><BackupJobSessions>{''.join(sessions)}"
        f"</BackupJobSessions></Entities>{paging}</QueryResult>"
    ).encode()


BASIC = (
    "<JobName>Job A</JobName>",
    "<JobType>Backup</JobType>",
    "<CreationTimeUTC>2026-06-15T01:00:00Z</CreationTimeUTC>",
    "<EndTimeUTC>2026-06-15T01:10:00Z</EndTimeUTC>",
    "<State>Stopped</State>",
    "<Result>Success</Result>",
)


# --- the documented and captured shapes -------------------------------------------------------


def test_the_documented_entity_reads_whole() -> None:
    answer = read_entity(io.BytesIO((JOBS / "entity.xml").read_bytes()), "xml")
    (record,) = list(answer)
    assert record == JobSessionRecord(
        uid="urn:veeam:backupjobsession:a057c2c3-f3bd-4ab4-9fb7-24058cccb4f6",
        job_name="Backup Job 3",
        job_type="Backup",
        backup_server="enterprise01.tech.local",
        created=ts("2025-09-24T20:00:09.607Z"),
        ended=ts("2025-09-24T20:02:54.717Z"),
        finished=True,
        result="Success",
        retry=False,
        progress=100.0,
    )
    assert record.duration == pytest.approx(165.11)
    assert record.job == ("enterprise01.tech.local", "Backup Job 3", "Backup")


def test_the_documented_query_result_with_a_running_session() -> None:
    entries, paging = query((JOBS / "query.xml").read_bytes())
    worker, running = entries
    assert paging == Paging(page_num=1, page_size=100, pages_count=1)
    assert isinstance(worker, JobSessionRecord) and isinstance(running, JobSessionRecord)
    assert worker.job == (
        "enterprisevbr01.tech.local",
        "Periodic Backup Copy Job\\Backup Job 1",
        "ImmediateBackupCopyWorker",
    )
    assert (worker.finished, worker.result, worker.retry) == (True, "Failed", True)
    assert worker.created == ts("2025-08-16T05:17:38.22142Z")
    assert worker.ended == ts("2025-08-16T05:25:01.879599Z")
    assert (running.finished, running.result, running.ended, running.progress) == (
        False,
        "",
        None,
        42.0,
    )
    assert running.duration is None


def test_the_v12_json_shape() -> None:
    entries, paging = query((JOBS / "query_v12.json").read_bytes(), "json")
    parent, worker, running = entries
    assert paging == Paging(page_num=1, page_size=100, pages_count=1)
    assert isinstance(parent, JobSessionRecord)
    assert parent.job == (
        "myhost2.mydomain.org",
        "COPY_BACKUP_VMW_MECM_AN_TO_DD_DCH_NEW",
        "ImmediateBackupCopy",
    )
    assert parent.uid == "urn:veeam:backupjobsession:45f138d9-7e5e-4140-bd33-088cc207a0f9"
    assert (parent.finished, parent.result, parent.retry, parent.progress) == (
        True,
        "Success",
        False,
        0.0,
    )
    assert parent.duration == pytest.approx(
        ts("2026-06-15T02:04:52.037Z") - ts("2026-06-14T23:09:26.173Z")
    )
    assert isinstance(worker, JobSessionRecord)
    assert worker.job_name == (
        "COPY_OPER_WIN_S3\\BACKUP_DCP_C2_AGENTS_PRA_clone1 - myhost2.mydomain.org"
    )
    assert (worker.job_type, worker.result) == ("ImmediateBackupCopyWorker", "Warning")
    assert isinstance(running, JobSessionRecord)
    # "EndTimeUTC": null and "Result": "None" on a Working session.
    assert (running.finished, running.ended, running.result, running.progress) == (
        False,
        None,
        "",
        37.0,
    )


def test_the_v13_json_shape_camel_case_keys_pascal_case_values() -> None:
    entries, paging = query((JOBS / "query_v13.json").read_bytes(), "json")
    first, retry = entries
    assert paging == Paging(page_num=1, page_size=100, pages_count=1)
    assert isinstance(first, JobSessionRecord) and isinstance(retry, JobSessionRecord)
    assert (
        first.job
        == retry.job
        == ("myhost2.mydomain.org", "H3_BACKUP_DDH_ORACLE_DEV_SYSONLY", "Backup")
    )
    assert (first.result, first.retry) == ("Failed", False)
    assert (retry.result, retry.retry) == ("Failed", True)
    assert retry.created == ts("2026-06-16T06:22:07.193292Z")  # six fractional digits
    assert retry.uid == "urn:veeam:backupjobsession:bc6b105b-7e45-4e86-8f41-5d177d78d273"


def test_a_json_entity_with_a_bom() -> None:
    document = json.loads((JOBS / "query_v13.json").read_text())
    entity = document["entities"]["backupJobSessions"]["backupJobSessions"][1]
    body = b"\xef\xbb\xbf" + json.dumps(entity).encode()
    (record,) = list(read_entity(io.BytesIO(body), "json"))
    assert isinstance(record, JobSessionRecord)
    assert (record.result, record.retry) == ("Failed", True)


# --- reading the fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "result", "finished", "expected"),
    [
        ("Stopped", "Success", True, "Success"),
        ("STOPPED", "warning", True, "Warning"),
        ("stopped", "FAILED", True, "Failed"),
        ("Stopped", "None", True, "Unknown"),  # a finished session without an outcome
        ("Stopped", "", True, "Unknown"),
        ("Stopped", "Canceled", True, "Unknown"),
        ("Working", "None", False, ""),
        ("Postprocessing", "Success", False, ""),  # any state but Stopped is running
        ("", "Failed", False, ""),
    ],
)
def test_finished_and_result(state: str, result: str, finished: bool, expected: str) -> None:
    (record,) = records(
        xml_query(
            xml_session(
                "<JobName>J</JobName>",
                "<CreationTimeUTC>2026-06-15T01:00:00Z</CreationTimeUTC>",
                f"<State>{state}</State>",
                f"<Result>{result}</Result>",
            )
        )
    )
    assert (record.finished, record.result) == (finished, expected)


def test_a_finished_session_without_an_end_has_no_duration() -> None:
    (record,) = records(xml_query(xml_session(*BASIC[:3], "<State>Stopped</State>")))
    assert record.finished and record.ended is None and record.duration is None


def test_element_and_attribute_names_match_in_any_case() -> None:
    body = (
        f"<queryresult {NS}><ENTITIES><backupjobsessions>"
        '<BACKUPJOBSESSION uid="urn:veeam:BackupJobSession:AB">'
        "<links><LINK type='backupserverreference' NAME='vbr01' /></links>"
        "<JOBNAME>J</JOBNAME><jobtype>Backup</jobtype>"
        "<CreationTimeUtc>2026-06-15T01:00:00Z</CreationTimeUtc><endtimeutc>2026-06-15T01:00:10Z</endtimeutc>"
        "<STATE>Stopped</STATE><result>Success</result><isretry>True</isretry><PROGRESS>100</PROGRESS>"
        "</BACKUPJOBSESSION></backupjobsessions></ENTITIES>"
        '<pagingINFO pagescount="2" PAGESIZE="1" pagenum="1"/></queryresult>'
    ).encode()
    entries, paging = query(body)
    (record,) = entries
    assert isinstance(record, JobSessionRecord)
    assert (record.uid, record.backup_server, record.retry, record.duration) == (
        "urn:veeam:backupjobsession:ab",
        "vbr01",
        True,
        10.0,
    )
    assert paging == Paging(page_num=1, page_size=1, pages_count=2)


def test_json_keys_match_in_any_case() -> None:
    entity = {
        "UID": "urn:veeam:BackupJobSession:1",
        "JOBNAME": "J",
        "jobtype": "NasBackup",
        "CreationTimeUtc": "2026-06-15T01:00:00Z",
        "STATE": "Stopped",
        "rEsUlT": "Success",
        "IsRetry": "true",
        "LINKS": [{"TYPE": "BackupServerReference", "NAME": "vbr01"}],
    }
    body = json.dumps({"ENTITIES": {"BACKUPJOBSESSIONS": {"backupjobsessions": [entity]}}})
    (record,) = records(body.encode(), "json")
    assert (record.job_type, record.backup_server, record.result, record.retry) == (
        "NasBackup",
        "vbr01",
        "Success",
        True,
    )


def test_the_backup_server_is_the_link_name_else_the_guid_of_its_href() -> None:
    href = "https://em:9398/api/backupServers/3eb3d903-fb0b-4ddd-bde9-49d182aeeb0c"
    named, unnamed, none = records(
        xml_query(
            xml_session(
                *BASIC,
                uid="u1",
                links=f'<Link Type="BackupServerReference" Name=" vbr1 " Href="{href}"/>',
            ),
            xml_session(
                *BASIC,
                uid="u2",
                links=f'<Link Type="JobReference" Name="x"/><Link Type="BackupServerReference" Name="" Href="{href}"/>',
            ),
            xml_session(*BASIC, uid="u3"),
        )
    )
    assert named.backup_server == "vbr1"
    assert unnamed.backup_server == "3eb3d903-fb0b-4ddd-bde9-49d182aeeb0c"
    assert none.backup_server == ""


def test_the_job_name_falls_back_to_the_job_link() -> None:
    (record,) = records(
        xml_query(xml_session(*BASIC[1:], links='<Link Type="JobReference" Name="From the link"/>'))
    )
    assert record.job_name == "From the link"


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        ("0", 0.0),
        ("100", 100.0),
        ("57.5", 57.5),
        ("101", None),
        ("-1", None),
        ("x", None),
        ("", None),
    ],
)
def test_progress(progress: str, expected: float | None) -> None:
    (record,) = records(xml_query(xml_session(*BASIC, f"<Progress>{progress}</Progress>")))
    assert record.progress == expected


# --- unreadable entries and refused answers -------------------------------------------------------


@pytest.mark.parametrize(
    ("session", "why"),
    [
        (xml_session(*BASIC, uid=""), "no UID"),
        (xml_session(*BASIC, uid="u" * 300), "UID longer than 256 characters"),
        (xml_session(*BASIC[1:]), "no JobName"),
        (
            xml_session(f"<JobName>{'n' * (JOB_NAME_LIMIT + 1)}</JobName>", *BASIC[1:]),
            "JobName longer than 512 characters",
        ),
        (
            xml_session(*BASIC, "<JobType>" + "t" * 101 + "</JobType>"),
            "JobType longer than 100 characters",
        ),
        (xml_session(BASIC[0], *BASIC[2:]), ""),  # no JobType: readable, type ""
        (xml_session(BASIC[0], BASIC[1], *BASIC[3:]), "no CreationTimeUTC"),
        (
            xml_session(*BASIC, "<CreationTimeUTC>yesterday</CreationTimeUTC>"),
            "unreadable CreationTimeUTC",
        ),
        (
            xml_session(*BASIC[:3], "<EndTimeUTC>2026-13-01T00:00:00Z</EndTimeUTC>", *BASIC[4:]),
            "unreadable EndTimeUTC",
        ),
        (
            xml_session(*BASIC, links=f'<Link Type="BackupServerReference" Name="{"s" * 300}"/>'),
            "backup server name longer than 256 characters",
        ),
    ],
)
def test_an_unreadable_entry_is_counted_not_fatal(session: str, why: str) -> None:
    good = xml_session(*BASIC, uid="good")
    entries, _ = query(xml_query(session, good))
    assert isinstance(entries[1], JobSessionRecord)
    if why:
        assert entries[0] == UnreadableEntry(why)
    else:
        assert isinstance(entries[0], JobSessionRecord) and entries[0].job_type == ""


def test_a_huge_field_is_unreadable_and_costs_its_cap_not_its_size() -> None:
    huge = "x" * (4 * 1024 * 1024)
    entries, _ = query(xml_query(xml_session(f"<JobName>{huge}</JobName>", *BASIC[1:])))
    assert entries == [UnreadableEntry("JobName longer than 512 characters")]


def test_unreadable_json_entries() -> None:
    items = [
        "not an object",
        {"uid": "u1", "jobName": ["a list"], "creationTimeUTC": "2026-06-15T01:00:00Z"},
        {
            "uid": "u2",
            "jobName": "J",
            "creationTimeUTC": "2026-06-15T01:00:00Z",
            "state": "Stopped",
        },
    ]
    body = json.dumps({"Entities": {"BackupJobSessions": {"BackupJobSessions": items}}}).encode()
    entries, paging = query(body, "json")
    assert entries[:2] == [
        UnreadableEntry("not an object"),
        UnreadableEntry("a field has the wrong JSON type"),
    ]
    assert isinstance(entries[2], JobSessionRecord) and entries[2].result == "Unknown"
    assert paging is None  # no PagingInfo: one page


@pytest.mark.parametrize(
    "body",
    [
        b'{"Entities": null, "PagingInfo": {"PagesCount": 0}}',
        b'{"Entities": {"Jobs": null, "BackupJobSessions": null}}',
        b'{"Entities": {"BackupJobSessions": {"BackupJobSessions": []}}}',
        b'{"Entities": {"BackupJobSessions": {"BackupJobSessions": null}}}',
        b'{"Entities": {"BackupJobSessions": {}}}',
        b'{"entities": {}}',
        b"[]",
        b"  \r\n[ ]  ",
    ],
)
def test_every_empty_json_shape_is_an_empty_page(body: bytes) -> None:
    assert query(body, "json")[0] == []


@pytest.mark.parametrize(
    ("body", "fmt", "message"),
    [
        (b"", "xml", "empty answer"),
        (b"", "json", "empty answer"),
        (f"<EntityReferences {NS}/>".encode(), "xml", "references instead of entities"),
        (f"<SystemSessions {NS}/>".encode(), "xml", "unexpected root element 'systemsessions'"),
        (b"<QueryResult><Entities>", "xml", "malformed XML"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><QueryResult/>', "xml", "declares a DTD"),
        (b"<html>no</html>", "json", "the answer starts with '<'"),
        (b'{"Sessions": []}', "json", "not a query result"),
        (b'{"Entities": {"BackupJobSessions": [1, 2}', "json", "malformed JSON"),
        (b'{"Entities": null} {"again": 1}', "json", "more data after the answer"),
        (b'{"Entities": {"BackupJobSessions": {"BackupJobSessions": 5}}}', "json", "not an array"),
        (b'{"Entities": {"BackupJobSessions": "x"}}', "json", "neither an object nor an array"),
    ],
)
def test_an_answer_that_is_no_collection_fails(body: bytes, fmt: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        query(body, fmt)


def test_an_entity_lookup_must_be_a_session() -> None:
    with pytest.raises(ParseError, match="unexpected root element 'queryresult'"):
        list(read_entity(io.BytesIO(xml_query()), "xml"))
    with pytest.raises(ParseError, match="a session must be an object"):
        list(read_entity(io.BytesIO(b"[]"), "json"))


def test_a_single_xml_tag_too_long_is_refused() -> None:
    body = b"<QueryResult><Entities><BackupJobSessions><BackupJobSession UID='" + b"a" * (
        STALL_LIMIT + 2 * 65536
    )
    with pytest.raises(ParseError, match="longer than 1 MiB"):
        query(body)


def test_a_json_value_too_long_is_refused() -> None:
    body = b'{"Refs": "' + b"r" * (JSON_VALUE_LIMIT + 65536) + b'"}'
    with pytest.raises(ParseError, match="a JSON value longer than 8 MiB"):
        query(body, "json")


def test_undecodable_bytes_become_replacement_characters() -> None:
    session = xml_session("<JobName>Sauvegarde \xe9t\xe9</JobName>", *BASIC[1:])
    body = xml_query(session).replace(b"\xc3\xa9", b"\xe9")  # latin-1 bytes in a UTF-8 answer
    (record,) = records(body)
    assert record.job_name == "Sauvegarde \ufffdt\ufffd"
    body = b'{"Entities":{"BackupJobSessions":{"BackupJobSessions":[{"uid":"u","jobName":"caf\xe9","creationTimeUTC":"2026-06-15T01:00:00Z","jobType":"\\ud800"}]}}}'
    (record,) = records(body, "json")
    assert (record.job_name, record.job_type) == ("caf\ufffd", "\ufffd")


# --- streaming ----------------------------------------------------------------------------------


class _Cut(io.RawIOBase):
    """A stream that hands over ``head`` and then fails, as a connection reset would."""

    def __init__(self, head: bytes) -> None:
        self._head = head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._head:
            raise ConnectionResetError("cut")
        size = min(len(buffer), len(self._head))
        buffer[:size] = self._head[:size]
        self._head = self._head[size:]
        return size


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_entries_stream_out_before_the_answer_ends(fmt: str) -> None:
    uids = [f"uid-{n:05}" for n in range(3000)]
    if fmt == "xml":
        body = xml_query(*(xml_session(*BASIC, uid=uid) for uid in uids))
    else:
        items = [
            {"uid": uid, "jobName": "J", "creationTimeUTC": "2026-06-15T01:00:00Z"} for uid in uids
        ]
        body = json.dumps(
            {"Entities": {"BackupJobSessions": {"BackupJobSessions": items}}}
        ).encode()
    stream: IO[bytes] = io.BufferedReader(_Cut(body[: len(body) // 2]), 64 * 1024)
    seen: list[str] = []

    def read() -> None:
        for entry in read_query(stream, fmt):  # type: ignore[arg-type]
            assert isinstance(entry, JobSessionRecord)
            seen.append(entry.uid)

    with pytest.raises(ConnectionResetError):
        read()
    # The entries before the cut were handed on as they were read, in order.
    assert 0 < len(seen) < len(uids)
    assert seen == uids[: len(seen)]
