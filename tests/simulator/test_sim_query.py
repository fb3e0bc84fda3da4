"""The query service: filter grammar, sorting, paging, links, formats and errors."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest

from exporter.simulator import SimJobSession, SimulatedEM, SimulatorSettings
from exporter.simulator.order import sql_server_key

from .helpers import T0, ManualClock, Q, get, job_query, logon, parse_xml, query_uids

Pick = Callable[[SimJobSession], bool]


@pytest.fixture(scope="module")
def qem() -> Iterator[SimulatedEM]:
    """The demo estate's month, frozen at T0, with a few sessions of unusual names."""
    with SimulatedEM(SimulatorSettings(live=False), clock=ManualClock()) as em:
        em.add_job_session("Exchange Backup", job_name='Mail "Archive" Backup', state="Stopped")
        em.add_job_session("Exchange Backup", job_name="Caf\u00e9 ; Backup, Copy", state="Stopped")
        em.collect()
        yield em


@pytest.fixture
def token(qem: SimulatedEM) -> str:
    return logon(qem)


@pytest.fixture
def everything(qem: SimulatedEM) -> list[SimJobSession]:
    return qem.job_sessions()


def ids(sessions: list[SimJobSession], pick: Pick) -> list[str]:
    return [s.id for s in sessions if pick(s)]


def check(
    qem: SimulatedEM, token: str, text: str, pick: Pick, everything: list[SimJobSession]
) -> None:
    expected = ids(everything, pick)
    assert expected, f"the filter {text!r} should match something"
    assert query_uids(qem, token, f"filter={quote(text)}&pageSize=2000") == expected


CUT = T0 - timedelta(days=3)
CUT_TEXT = CUT.strftime("%Y-%m-%dT%H:%M:%S")


@pytest.mark.parametrize(
    ("operator", "pick"),
    [
        (">=", lambda s: s.created >= CUT),
        (">", lambda s: s.created > CUT),
        ("<=", lambda s: s.created <= CUT),
        ("<", lambda s: s.created < CUT),
        ("!=", lambda s: s.created != CUT),
    ],
)
def test_each_comparison_on_dates(
    qem: SimulatedEM, token: str, everything: list[SimJobSession], operator: str, pick: Pick
) -> None:
    check(qem, token, f'CreationTime{operator}"{CUT_TEXT}Z"', pick, everything)


def test_equality_on_a_date(qem: SimulatedEM, token: str, everything: list[SimJobSession]) -> None:
    one = everything[17]
    stamp = one.created.isoformat().replace("+00:00", "Z")
    check(qem, token, f"CreationTime=={stamp}", lambda s: s.created == one.created, everything)


@pytest.mark.parametrize(
    "value",
    [
        f'"{CUT_TEXT}Z"',  # the documented form
        f'"{CUT_TEXT}"',  # no zone: taken as UTC, as httpapi_exporter sends it
        CUT_TEXT,  # unquoted, no zone, as centreon sends it
        f"{CUT_TEXT}Z",  # unquoted with Z
        f'"{CUT_TEXT}.000Z"',  # fractional seconds
        f'"{(CUT + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")}+02:00"',  # an offset
    ],
)
def test_date_forms_real_clients_send(
    qem: SimulatedEM, token: str, everything: list[SimJobSession], value: str
) -> None:
    check(qem, token, f"CreationTime>={value}", lambda s: s.created >= CUT, everything)


def test_a_date_without_time_is_midnight_utc(
    qem: SimulatedEM, token: str, everything: list[SimJobSession]
) -> None:
    day = CUT.replace(hour=0, minute=0, second=0, microsecond=0)
    check(
        qem,
        token,
        f'endtime>"{day:%Y-%m-%d}"',
        lambda s: s.ended is not None and s.ended > day,
        everything,
    )


def test_enumerations_compare_by_declaration_order_without_regard_to_case(
    qem: SimulatedEM, token: str, everything: list[SimJobSession]
) -> None:
    check(qem, token, "Result>=Warning", lambda s: s.result in ("Warning", "Failed"), everything)
    check(qem, token, "result<warning", lambda s: s.result in ("None", "Success"), everything)
    check(qem, token, 'RESULT=="failed"', lambda s: s.result == "Failed", everything)
    check(qem, token, "State!=Stopped", lambda s: not s.finished, everything)
    check(qem, token, "state==working", lambda s: s.state == "Working", everything)
    check(
        qem,
        token,
        "JobType==ImmediateBackupCopyWorker",
        lambda s: s.job_type == "ImmediateBackupCopyWorker",
        everything,
    )
    check(qem, token, "IsRetry==true", lambda s: s.is_retry, everything)
    check(qem, token, "isretry==FALSE", lambda s: not s.is_retry, everything)


def test_strings_and_uids_compare_without_regard_to_case(
    qem: SimulatedEM, token: str, everything: list[SimJobSession]
) -> None:
    check(
        qem,
        token,
        "jobname==exchange backup",
        lambda s: s.job_name == "Exchange Backup",
        everything,
    )
    check(
        qem,
        token,
        'JobName=="Copy to DR\\SQL Servers Backup"',
        lambda s: s.job_name == "Copy to DR\\SQL Servers Backup",
        everything,
    )
    check(
        qem,
        token,
        "BackupServerName==VBR02.corp.local",
        lambda s: s.backup_server == "vbr02.corp.local",
        everything,
    )
    one = everything[3]
    check(
        qem,
        token,
        f'JobUid=="urn:veeam:Job:{one.job_uid.upper()}"',
        lambda s: s.job_uid == one.job_uid,
        everything,
    )
    check(qem, token, f"JobUid=={one.job_uid}", lambda s: s.job_uid == one.job_uid, everything)
    check(
        qem,
        token,
        f"BackupServerUid==urn:veeam:BackupServer:{one.backup_server_uid}",
        lambda s: s.backup_server_uid == one.backup_server_uid,
        everything,
    )
    check(qem, token, f'UID=="{one.uid}"', lambda s: s.id == one.id, everything)
    check(qem, token, f'Name=="{one.name}"', lambda s: s.name == one.name, everything)


def test_quoting(qem: SimulatedEM, token: str, everything: list[SimJobSession]) -> None:
    check(
        qem,
        token,
        'JobName=="Mail ""Archive"" Backup"',
        lambda s: s.job_name == 'Mail "Archive" Backup',
        everything,
    )
    # Inside quotes ; and , are part of the value.
    check(
        qem,
        token,
        'JobName=="Caf\u00e9 ; Backup, Copy"',
        lambda s: s.job_name == "Caf\u00e9 ; Backup, Copy",
        everything,
    )


def test_and_or_and_grouping(qem: SimulatedEM, token: str, everything: list[SimJobSession]) -> None:
    exchange = "Exchange Backup"
    sql = "SQL Servers Backup"
    check(
        qem,
        token,
        f'JobName=="{exchange}";Result==Failed',
        lambda s: s.job_name == exchange and s.result == "Failed",
        everything,
    )
    check(
        qem,
        token,
        f'JobName=="{exchange}",JobName=="{sql}"',
        lambda s: s.job_name in (exchange, sql),
        everything,
    )
    # ; binds tighter than ,
    check(
        qem,
        token,
        f'JobName=="{sql}",JobName=="{exchange}";Result==Failed',
        lambda s: s.job_name == sql or (s.job_name == exchange and s.result == "Failed"),
        everything,
    )
    check(
        qem,
        token,
        f'(JobName=="{sql}",JobName=="{exchange}");Result==Failed',
        lambda s: s.job_name in (sql, exchange) and s.result == "Failed",
        everything,
    )
    check(
        qem,
        token,
        f'( (JobName=="{sql}") , (IsRetry==true ; Result == Success) )',
        lambda s: s.job_name == sql or (s.is_retry and s.result == "Success"),
        everything,
    )


def test_a_missing_end_time_matches_no_comparison(
    qem: SimulatedEM, token: str, everything: list[SimJobSession]
) -> None:
    running = ids(everything, lambda s: s.ended is None)
    assert running
    after = query_uids(qem, token, f"filter={quote('EndTime>2000-01-01')}&pageSize=2000")
    not_now = query_uids(qem, token, f"filter={quote('EndTime!=2000-01-01')}&pageSize=2000")
    assert not set(running) & set(after) and not set(running) & set(not_now)
    assert len(after) == len(everything) - len(running)


def test_raw_and_percent_encoded_filters_are_the_same(qem: SimulatedEM, token: str) -> None:
    text = f'CreationTime>="{CUT_TEXT}Z";Result==Failed'
    raw = query_uids(qem, token, f"filter={text}&pageSize=2000")
    upper = quote(text, safe="")
    lower = re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), upper)
    assert "%3b" in lower and "%3E%3D" in upper
    assert raw
    assert query_uids(qem, token, f"filter={upper}&pageSize=2000") == raw
    assert query_uids(qem, token, f"filter={lower}&pageSize=2000") == raw


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Foo==1", "Unknown filter field 'Foo'"),
        ("CreationTimeUTC>=2025-01-01", "Unknown filter field 'CreationTimeUTC'"),
        ("Progress==100", "Unknown filter field 'Progress'"),
        ("Result=Failed", "comparison operator"),
        ("Result==", "a value expected"),
        ('JobName=="open', "unterminated"),
        ('JobName=="a"b', "expected after a quoted value"),
        ("(Result==Failed", "')' expected"),
        ("Result==Failed)", "unexpected ')'"),
        ("Result==Failed;", "a field name expected"),
        ("Result==Broken", "not a valid value of Result"),
        ("CreationTime>=yesterday", "not a valid date"),
        ("CreationTime>=2025-02-30", "not a valid date"),
        ("IsRetry==maybe", "true or false"),
    ],
)
def test_a_bad_filter_is_a_400_with_an_error_body(
    qem: SimulatedEM, token: str, text: str, message: str
) -> None:
    response = job_query(qem, token, f"filter={quote(text)}", json_body=False)
    assert response.status_code == 400
    root = parse_xml(response.content)
    assert root.tag == Q + "Error" and root.get("StatusCode") == "400"
    assert message in (root.get("Message") or "")
    body = job_query(qem, token, f"filter={quote(text)}").json()
    assert body["StatusCode"] == 400 and message in body["Message"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/query?format=Entities", "type parameter is required"),
        ("/api/query?type=Nothing", "Unknown query type"),
        ("/api/query?type=BackupJobSession&format=Entity", "Unknown format"),
        ("/api/query?type=BackupJobSession&pageSize=0", "pageSize"),
        ("/api/query?type=BackupJobSession&pageSize=x", "pageSize"),
        ("/api/query?type=BackupJobSession&page=-1", "page"),
        ("/api/query?type=BackupJobSession&sortAsc=Name&sortDesc=Name", "Only one of"),
        ("/api/query?type=BackupJobSession&sortAsc=Progress", "Unknown sort field"),
    ],
)
def test_bad_parameters_are_a_400(qem: SimulatedEM, token: str, path: str, message: str) -> None:
    response = get(qem, path, token, Accept="application/json")
    assert response.status_code == 400 and message in response.json()["Message"]


def test_sorting(qem: SimulatedEM, token: str, everything: list[SimJobSession]) -> None:
    ascending = query_uids(qem, token, "sortAsc=CreationTime&pageSize=2000")
    assert ascending == [s.id for s in sorted(everything, key=lambda s: s.created)]
    descending = query_uids(qem, token, "sortdesc=creationtime&pageSize=2000")
    assert descending == [s.id for s in sorted(everything, key=lambda s: s.created, reverse=True)]
    by_name = query_uids(qem, token, "sortAsc=JobName&pageSize=2000")
    names = {s.id: s.job_name.casefold() for s in everything}
    assert [names[i] for i in by_name] == sorted(names[i] for i in by_name)
    # Ties keep the unsorted (primary-key) order.
    pk = {s.id: n for n, s in enumerate(everything)}
    for a, b in itertools.pairwise(by_name):
        if names[a] == names[b]:
            assert pk[a] < pk[b]
    results = query_uids(qem, token, "sortDesc=Result&pageSize=2000&filter=State==Stopped")
    order = {"Failed": 0, "Warning": 1, "Success": 2}
    result_of = {s.id: s.result for s in everything}
    assert [order[result_of[i]] for i in results] == sorted(order[result_of[i]] for i in results)


def test_sorting_puts_missing_end_times_where_the_database_does(
    qem: SimulatedEM, token: str
) -> None:
    running = {s.id for s in qem.job_sessions() if s.ended is None}
    v12 = query_uids(qem, token, "sortAsc=EndTime&pageSize=2000")
    assert set(v12[: len(running)]) == running  # SQL Server: NULL first
    qem.set(em_version="13")
    try:
        v13 = query_uids(qem, token, "sortAsc=EndTime&pageSize=2000")
        assert set(v13[-len(running) :]) == running  # PostgreSQL: NULL last
    finally:
        qem.set(em_version="12")


def test_without_a_sort_the_order_is_the_primary_key(qem: SimulatedEM, token: str) -> None:
    unsorted = query_uids(qem, token, "pageSize=2000")
    assert unsorted == sorted(unsorted, key=sql_server_key)
    assert unsorted != sorted(unsorted)
    created = {s.id: s.created for s in qem.job_sessions()}
    assert [created[i] for i in unsorted] != sorted(created[i] for i in unsorted)  # not by time
    qem.set(em_version="13")
    try:
        assert query_uids(qem, token, "pageSize=2000") == sorted(unsorted)
    finally:
        qem.set(em_version="12")


def test_the_default_page_is_100(
    qem: SimulatedEM, token: str, everything: list[SimJobSession]
) -> None:
    body = job_query(qem, token, "").json()
    info = body["PagingInfo"]
    assert (info["PageNum"], info["PageSize"]) == (1, 100)
    assert info["PagesCount"] == math.ceil(len(everything) / 100)
    assert len(body["Entities"]["BackupJobSessions"]["BackupJobSessions"]) == 100


def test_paging_through_every_page(
    qem: SimulatedEM, token: str, everything: list[SimJobSession]
) -> None:
    size = 37
    first = job_query(qem, token, f"sortAsc=CreationTime&pageSize={size}").json()
    pages = first["PagingInfo"]["PagesCount"]
    assert pages == math.ceil(len(everything) / size)
    seen: list[str] = []
    for page in range(1, pages + 1):
        seen += query_uids(qem, token, f"sortAsc=CreationTime&pageSize={size}&page={page}")
    assert seen == [s.id for s in sorted(everything, key=lambda s: s.created)]
    last = query_uids(qem, token, f"sortAsc=CreationTime&pageSize={size}&page={pages}")
    assert len(last) == len(everything) - size * (pages - 1)
    beyond = job_query(qem, token, f"pageSize={size}&page={pages + 1}").json()
    assert beyond["Entities"]["BackupJobSessions"]["BackupJobSessions"] == []
    assert (beyond["PagingInfo"]["PageNum"], beyond["PagingInfo"]["PagesCount"]) == (
        pages + 1,
        pages,
    )


def test_paging_links_echo_the_request(qem: SimulatedEM, token: str) -> None:
    host = qem.url.removeprefix("http://")
    path = '/api/query?type=BackupJobSession&format=Entities&filter=CreationTime>="2025-03-01T00:00:00Z"&pageSize=50&page=2'
    body = get(qem, path, token, Accept="application/json").json()
    links = {link["Rel"]: link["Href"] for link in body["PagingInfo"]["Links"]}
    stem = (
        f"http://{host}/api/query?type=BackupJobSession&format=Entities"
        "&filter=CreationTime%3e%3d%222025-03-01T00%3a00%3a00Z%22&pageSize=50&page="
    )
    pages = body["PagingInfo"]["PagesCount"]
    assert links == {"First": stem + "1", "Next": stem + "3", "Last": stem + str(pages)}
    assert [link["Rel"] for link in body["PagingInfo"]["Links"]] == ["First", "Next", "Last"]
    assert all(
        link["Name"] is None and link["Type"] is None for link in body["PagingInfo"]["Links"]
    )
    # The server's own link works, and gives the next page.
    following = get(
        qem, links["Next"].removeprefix(f"http://{host}"), token, Accept="application/json"
    ).json()
    assert following["PagingInfo"]["PageNum"] == 3


def test_paging_links_append_paging_and_follow_the_version(qem: SimulatedEM, token: str) -> None:
    qem.set(em_version="13", hostname_in_hrefs="em.corp.local", query_previous_link=True)
    try:
        path = "/api/query?sortDesc=CreationTime&type=BackupJobSession&filter=Result==Failed;JobName==x y&page=2&pageSize=1"
        body = parse_xml(get(qem, path, token).content)
        info = body.find(Q + "PagingInfo")
        assert info is not None and list(info.attrib) == ["PageNum", "PageSize", "PagesCount"]
        links = {link.get("Rel"): link.get("Href") for link in info.iter(Q + "Link")}
        assert set(links) == {"First", "Previous", "Last"}  # nothing matches: no Next
        port = qem.url.rsplit(":", 1)[1]
        assert links["First"] == (
            f"http://em.corp.local:{port}/api/query?sortDesc=CreationTime&type=BackupJobSession"
            "&filter=Result%3D%3DFailed;JobName%3D%3Dx+y&page=1&pageSize=1"
        )
        no_paging = get(
            qem, "/api/query?type=BackupJobSession", token, Accept="application/json"
        ).json()
        first = no_paging["PagingInfo"]["Links"][0]["Href"]
        assert first.endswith("/api/query?type=BackupJobSession&pageSize=100&page=1")
    finally:
        qem.set(em_version="12", hostname_in_hrefs=None, query_previous_link=False)


def test_the_page_size_cap(qem: SimulatedEM, token: str) -> None:
    qem.set(query_page_size_cap=40)
    try:
        body = job_query(qem, token, "pageSize=500").json()
        assert body["PagingInfo"]["PageSize"] == 40
        assert len(body["Entities"]["BackupJobSessions"]["BackupJobSessions"]) == 40
        assert body["PagingInfo"]["Links"][0]["Href"].endswith("pageSize=40&page=1")
    finally:
        qem.set(query_page_size_cap=0)


def test_an_empty_answer(qem: SimulatedEM, token: str) -> None:
    body = job_query(qem, token, "filter=JobName==nothing").json()
    assert body["Entities"]["BackupJobSessions"] == {"BackupJobSessions": []}
    assert body["PagingInfo"]["PagesCount"] == 0
    assert [link["Rel"] for link in body["PagingInfo"]["Links"]] == ["First", "Last"]
    xml = parse_xml(job_query(qem, token, "filter=JobName==nothing", json_body=False).content)
    entities = xml.find(Q + "Entities")
    assert entities is not None and [c.tag for c in entities] == [Q + "BackupJobSessions"]
    qem.set(query_empty="null")
    try:
        assert (
            job_query(qem, token, "filter=JobName==nothing").json()["Entities"]["BackupJobSessions"]
            is None
        )
        xml = parse_xml(job_query(qem, token, "filter=JobName==nothing", json_body=False).content)
        entities = xml.find(Q + "Entities")
        assert entities is not None and len(entities) == 0
    finally:
        qem.set(query_empty="list")


def test_the_json_envelope_in_both_casings(qem: SimulatedEM, token: str) -> None:
    body = job_query(qem, token, "pageSize=3").json()
    assert list(body) == ["Refs", "Entities", "Resources", "Links", "PagingInfo"]
    assert body["Refs"] is None and body["Resources"] is None and body["Links"] is None
    slots = body["Entities"]
    assert len(slots) == 50 and list(slots)[9] == "BackupJobSessions"
    assert [k for k, v in slots.items() if v is not None] == ["BackupJobSessions"]
    assert "EnterpiseRoles" in slots and "NASJobs" in slots
    assert list(body["PagingInfo"]) == ["Links", "PageNum", "PageSize", "PagesCount"]
    qem.set(json_casing="camel", bom=True)
    try:
        raw = job_query(qem, token, "pageSize=3").content
        assert raw.startswith(b"\xef\xbb\xbf")
        camel = json.loads(raw[3:])
        assert list(camel) == ["refs", "entities", "resources", "links", "pagingInfo"]
        assert "enterpiseRoles" in camel["entities"] and "nasJobs" in camel["entities"]
        entries = camel["entities"]["backupJobSessions"]["backupJobSessions"]
        assert list(entries[0])[:3] == ["isRetry", "jobUid", "jobName"]
        assert entries[0]["links"][0]["type"] == "BackupServerReference"
        assert entries[0]["state"] in ("Stopped", "Working")
        assert list(camel["pagingInfo"]) == ["links", "pageNum", "pageSize", "pagesCount"]
    finally:
        qem.set(json_casing="pascal", bom=False)


def test_references_are_the_default_format(
    qem: SimulatedEM, token: str, everything: list[SimJobSession]
) -> None:
    body = get(
        qem, "/api/query?type=BackupJobSession&pageSize=5", token, Accept="application/json"
    ).json()
    assert body["Entities"] is None
    refs = body["Refs"]["Refs"]
    assert [r["UID"].rsplit(":", 1)[1] for r in refs] == [s.id for s in everything[:5]]
    assert refs[0]["Type"] == "BackupJobSessionReference"
    assert list(refs[0]) == ["Links", "UID", "Name", "Href", "Type"]
    xml = parse_xml(
        get(qem, "/api/query?type=backupjobsession&format=references&pageSize=5", token).content
    )
    assert [c.tag for c in xml] == [Q + "Refs", Q + "PagingInfo"]
    refs_xml = xml.find(Q + "Refs")
    assert refs_xml is not None and len(refs_xml) == 5
    assert list(refs_xml[0].attrib) == ["Type", "Href", "Name", "UID"]


def test_the_window_of_the_query_service(qem: SimulatedEM, token: str) -> None:
    old = qem.add_job_session(
        "Exchange Backup",
        state="Stopped",
        created=T0 - timedelta(days=40),
        ended=T0 - timedelta(days=40),
    )
    qem.collect()
    try:
        assert old.id in query_uids(qem, token, "pageSize=2000")  # the default, 13 weeks
        qem.set(query_window_days=30)
        assert old.id not in query_uids(qem, token, "pageSize=2000")
        qem.set(query_window_days=0)
        assert old.id in query_uids(qem, token, "pageSize=2000")
        listed = get(qem, "/api/backupSessions", token, Accept="application/json").json()["Refs"]
        assert old.id not in {r["UID"].rsplit(":", 1)[1] for r in listed}  # always 30 days
    finally:
        qem.set(query_window_days=91)
        qem.remove_job_session(old.id)
        qem.collect()


def test_task_and_replica_queries(qem: SimulatedEM, token: str) -> None:
    replicas = query_uids(qem, token, "pageSize=1000", kind="ReplicaJobSession")
    assert replicas == [s.id for s in qem.job_sessions("ReplicaJobSession")]
    failed = job_query(
        qem, token, "filter=Result==Failed&pageSize=5", kind="BackupTaskSession"
    ).json()
    tasks = failed["Entities"]["BackupTaskSessions"]["BackupTaskSessions"]
    assert tasks and all(
        t["Result"] == "Failed" and t["Reason"] and t["TotalSize"] == 0 for t in tasks
    )
    named = job_query(
        qem,
        token,
        "filter=VmDisplayName==sql02;JobName==SQL Servers Backup",
        kind="BackupTaskSession",
    )
    assert named.status_code == 200
    assert all(
        t["VmDisplayName"] == "sql02"
        for t in named.json()["Entities"]["BackupTaskSessions"]["BackupTaskSessions"]
    )
    bad = job_query(qem, token, "filter=IsRetry==true", kind="BackupTaskSession")
    assert bad.status_code == 400
