"""The collection and single-session representations, checked against Veeam's own example."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from lxml import etree

from exporter.simulator import SimSession, SimulatedEM, SimulatorSettings

from .helpers import NS, T0, ManualClock, Q, get, logon, parse_xml, text

# Veeam's documented example of GET /api/systemSessions (one of its two sessions).
REFERENCE = b"""<SystemSessions xmlns:xsd="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://www.veeam.com/ent/v1.0">
 <Sessions Href="https://enterprise04.tech.local:9398/api/systemSessions/00057ade-8f1a-4b54-a265-391441981e25?format=Entity"
  Type="SystemSession" Name="Collect Job @2023-01-27 17:05:52.069837"
  UID="urn:veeam:SystemSession:00057ade-8f1a-4b54-a265-391441981e25">
  <Links>
   <Link Href="https://enterprise04.tech.local:9398/api/systemSessions/00057ade-8f1a-4b54-a265-391441981e25"
    Name="Collect Job @2023-01-27 17:05:52.069837" Type="BackupJobSessionReference" Rel="Alternate"/>
   <Link Href="https://enterprise04.tech.local:9398/api/systemSessions/00057ade-8f1a-4b54-a265-391441981e25/events"
    Name="Events" Type="SystemSessionEvents" Rel="Down"/>
  </Links>
  <SessionType>CollectJob</SessionType>
  <CreationTimeUTC>2023-01-27T17:05:52.069837Z</CreationTimeUTC>
  <EndTimeUTC>2023-01-27T17:06:10.491337Z</EndTimeUTC>
  <State>CompletedSuccessfully</State>
  <Result> <Result>CompletedSuccessfully</Result> <Message/> <IsCanceled>false</IsCanceled> </Result>
 </Sessions>
</SystemSessions>"""

Shape = tuple[str, tuple[str, ...], tuple["Shape", ...]]
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$")


def shape(element: etree._Element) -> Shape:
    """Element name, attribute names in order, and the shapes of the children in order."""
    return (
        etree.QName(element).localname,
        tuple(str(key) for key in element.attrib),
        tuple(shape(child) for child in element),
    )


def reference_shape() -> Shape:
    item = etree.fromstring(REFERENCE).find(Q + "Sessions")
    assert item is not None
    return shape(item)


def without_end(s: Shape) -> Shape:
    name, attrs, children = s
    return (name, attrs, tuple(c for c in children if c[0] != "EndTimeUTC"))


def sessions_from_xml(root: etree._Element) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for item in root.findall(Q + "Sessions"):
        uid = item.get("UID") or ""
        out[uid.rsplit(":", 1)[1]] = (
            text(item, "SessionType"),
            text(item, "CreationTimeUTC"),
            text(item, "EndTimeUTC"),
            text(item, "State"),
            text(item, "Result/Result"),
            text(item, "Result/Message"),
            text(item, "Result/IsCanceled"),
            item.get("Name"),
        )
    return out


def iso(value: datetime | None, digits: int = 6) -> str | None:
    if value is None:
        return None
    fraction = f"{value.microsecond:06d}0"[:digits].rstrip("0")
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def expected(sessions: list[SimSession], digits: int = 6) -> dict[str, tuple[object, ...]]:
    return {
        s.id: (
            s.session_type,
            iso(s.created, digits),
            iso(s.ended, digits),
            s.state,
            s.result,
            s.message,
            "true" if s.canceled else "false",
            s.name,
        )
        for s in sessions
    }


@pytest.fixture
def with_running(em: SimulatedEM) -> SimSession:
    return em.add_session("CollectJob", created=T0 - timedelta(seconds=5))


def test_xml_collection_has_veeams_structure(em: SimulatedEM, with_running: SimSession) -> None:
    reference = reference_shape()
    response = get(em, "/api/systemSessions?format=Entity", logon(em))
    assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    root = parse_xml(response.content)
    assert root.tag == Q + "SystemSessions"
    assert root.nsmap == {
        None: NS,
        "xsd": "http://www.w3.org/2001/XMLSchema",
        "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    }
    items = root.findall(Q + "Sessions")
    assert len(items) == len(root) > 100
    for item in items:
        if text(item, "State") == "InProgress":
            assert shape(item) == without_end(reference)
        else:
            assert shape(item) == reference


def test_xml_answer_matches_the_records(em: SimulatedEM, with_running: SimSession) -> None:
    token = logon(em)
    for path in ("/api/systemSessions?format=Entity", "/api/systemSessions"):
        root = parse_xml(get(em, path, token).content)
        assert sessions_from_xml(root) == expected(em.sessions())
        uids = [i.get("UID") or "" for i in root]
        assert uids == sorted(uids)
    running = sessions_from_xml(root)[with_running.id]
    assert running[2] is None and running[3] == "InProgress"


def test_hrefs_and_links(em: SimulatedEM) -> None:
    root = parse_xml(get(em, "/api/systemSessions?format=Entity", logon(em)).content)
    item = root[0]
    sid = (item.get("UID") or "").rsplit(":", 1)[1]
    assert item.get("Href") == f"{em.url}/api/systemSessions/{sid}?format=Entity"
    links = [(x.get("Rel"), x.get("Href"), x.get("Type")) for x in item.iter(Q + "Link")]
    assert links == [
        ("Alternate", f"{em.url}/api/systemSessions/{sid}", "BackupJobSessionReference"),
        ("Down", f"{em.url}/api/systemSessions/{sid}/events", "SystemSessionEvents"),
    ]


def test_hostname_in_hrefs(clock: ManualClock) -> None:
    settings = SimulatorSettings(history_days=1, hostname_in_hrefs="em01.corp.local")
    with SimulatedEM(settings, clock=clock) as em:
        root = parse_xml(get(em, "/api/systemSessions?format=Entity", logon(em)).content)
        port = em.url.rsplit(":", 1)[1]
        assert (root[0].get("Href") or "").startswith(f"http://em01.corp.local:{port}/api/")


def test_json_pascal(em: SimulatedEM, with_running: SimSession) -> None:
    response = get(em, "/api/systemSessions?format=Entity", logon(em), Accept="application/json")
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.content.startswith(b"{")
    body = response.json()
    assert list(body) == ["Sessions"]
    keys = ["SessionType", "CreationTimeUTC", "EndTimeUTC", "State", "Result"]
    keys += ["Name", "UID", "Links", "Href", "Type"]
    for item in body["Sessions"]:
        assert list(item) == keys
        assert list(item["Result"]) == ["Result", "Message", "IsCanceled"]
        assert isinstance(item["Result"]["IsCanceled"], bool)
        assert list(item["Links"][0]) == ["Rel", "Href", "Name", "Type"]
    running = next(i for i in body["Sessions"] if i["UID"].endswith(with_running.id))
    assert running["EndTimeUTC"] is None
    assert running["State"] == "InProgress"
    by_id = {i["UID"].rsplit(":", 1)[1]: i for i in body["Sessions"]}
    for s in em.sessions():
        item = by_id[s.id]
        assert (item["SessionType"], item["CreationTimeUTC"], item["EndTimeUTC"]) == (
            s.session_type,
            iso(s.created),
            iso(s.ended),
        )


def test_json_camel(em: SimulatedEM, with_running: SimSession) -> None:
    em.set(json_casing="camel")
    body = get(
        em, "/api/systemSessions", logon(em), Accept="application/xml, application/json"
    ).json()
    assert list(body) == ["sessions"]
    keys = ["sessionType", "creationTimeUTC", "endTimeUTC", "state", "result"]
    keys += ["name", "uid", "links", "href", "type"]
    for item in body["sessions"]:
        assert list(item) == keys
        assert list(item["result"]) == ["result", "message", "isCanceled"]
        assert list(item["links"][0]) == ["rel", "href", "name", "type"]


def test_json_wins_whenever_mentioned_but_star_means_xml(em: SimulatedEM) -> None:
    token = logon(em)
    assert get(em, "/api/", token, Accept="*/*").content.startswith(b"<?xml")
    mixed = get(em, "/api/", token, Accept="text/html, */*;q=0.1, application/json;q=0.2")
    assert mixed.content.startswith(b"{")


def test_bom_on_and_off(em: SimulatedEM) -> None:
    token = logon(em)
    assert get(em, "/api/systemSessions", token, Accept="application/json").content[:1] == b"{"
    em.set(bom=True)
    body = get(em, "/api/systemSessions", token, Accept="application/json").content
    assert body.startswith(b"\xef\xbb\xbf{")
    assert json.loads(body.decode("utf-8-sig"))["Sessions"]
    error = get(em, "/api/systemSessions", None, Accept="application/json").content
    assert error.startswith(b"\xef\xbb\xbf{")
    # XML never carries one: its declaration names the encoding.
    assert get(em, "/api/systemSessions", token).content.startswith(b"<?xml")


def test_result_vocabulary_switch(em: SimulatedEM, with_running: SimSession) -> None:
    token = logon(em)
    root = parse_xml(get(em, "/api/systemSessions", token).content)
    assert all(text(i, "Result/Result") == text(i, "State") for i in root)
    em.set(result_vocabulary="short")
    root = parse_xml(get(em, "/api/systemSessions", token).content)
    mapping = {"CompletedSuccessfully": "Success", "CompletedWarning": "Warning"}
    mapping |= {"Failed": "Failed", "InProgress": "None"}
    assert all(mapping[text(i, "State") or ""] == text(i, "Result/Result") for i in root)
    assert {text(i, "Result/Result") for i in root} >= {"Success", "Warning", "Failed", "None"}


@pytest.mark.parametrize("digits", [0, 1, 3, 6, 7])
def test_fraction_digits(em: SimulatedEM, digits: int) -> None:
    em.set(fraction_digits=digits)
    root = parse_xml(get(em, "/api/systemSessions", logon(em)).content)
    stamps = [text(i, "CreationTimeUTC") or "" for i in root]
    stamps += [text(i, "EndTimeUTC") or "" for i in root if text(i, "EndTimeUTC")]
    for stamp in stamps:
        assert TIME.match(stamp), stamp
        fraction = stamp[20:-1] if "." in stamp else ""
        assert len(fraction) <= digits
    if digits >= 3:
        assert any("." in s for s in stamps)
    assert sessions_from_xml(root) == expected(em.sessions(), digits)


def test_references_for_the_plain_path(em: SimulatedEM) -> None:
    em.set(references_for_plain_path=True)
    token = logon(em)
    refs = parse_xml(get(em, "/api/systemSessions", token).content)
    assert refs.tag == Q + "EntityReferences"
    first = refs[0]
    assert first.tag == Q + "Ref"
    assert list(first.attrib) == ["UID", "Name", "Href", "Type"]
    assert first.get("Type") == "SystemSessionReference"
    assert len(refs) == len(em.sessions())
    entities = parse_xml(get(em, "/api/systemSessions?format=Entity", token).content)
    assert entities.tag == Q + "SystemSessions"
    as_json = get(em, "/api/systemSessions", token, Accept="application/json").json()
    assert list(as_json) == ["Refs"]
    assert list(as_json["Refs"][0]) == ["UID", "Name", "Links", "Href", "Type"]


def test_single_session_reference_entity_and_events(em: SimulatedEM) -> None:
    token = logon(em)
    s = next(x for x in em.sessions() if x.session_type == "CollectJob")
    ref = parse_xml(get(em, f"/api/systemSessions/{s.id}", token).content)
    assert ref.tag == Q + "EntityRef"
    assert ref.get("Type") == "SystemSessionReference"
    assert ref.get("Href") == f"{em.url}/api/systemSessions/{s.id}"
    assert ref.get("UID") == f"urn:veeam:SystemSession:{s.id}"

    entity = parse_xml(get(em, f"/api/systemSessions/{s.id}?format=Entity", token).content)
    assert entity.tag == Q + "SystemSession"
    reference = reference_shape()
    assert shape(entity)[1:] == reference[1:]
    assert text(entity, "CreationTimeUTC") == iso(s.created)

    events = parse_xml(get(em, f"/api/systemSessions/{s.id}/events", token).content)
    assert events.tag == Q + "SystemSessionEvents"
    assert events.get("Type") == "SystemSessionEvents"
    lines = events.findall(Q + "Events")
    assert [text(e, "Order") for e in lines] == [str(i) for i in range(1, len(lines) + 1)]
    messages = [text(e, "Message") or "" for e in lines]
    assert messages[0] == "Starting data collection job..."
    assert messages[-1] == "Data collection job finished."
    assert any(m.startswith("Retrieving data from vbr0") for m in messages)
    stamps = [text(e, "CreationTimeUTC") or "" for e in lines]
    assert all(not t.endswith("Z") for t in stamps)
    assert stamps == sorted(stamps)

    as_json = get(em, f"/api/systemSessions/{s.id}/events", token, Accept="application/json").json()
    assert list(as_json) == ["Links", "Events", "Href", "Type"]
    assert list(as_json["Events"][0]) == ["CreationTimeUTC", "Message", "Order"]


def test_events_of_a_running_session_stop_before_the_outcome(clock: ManualClock) -> None:
    with SimulatedEM(SimulatorSettings(history_days=1), clock=clock) as em:
        token = logon(em)
        known = {s.id for s in em.sessions()}
        clock.advance(minutes=16)
        target = next(
            s for s in em.sessions() if s.id not in known and s.session_type == "CollectJob"
        )
        clock.set(target.created + timedelta(seconds=1))
        running = parse_xml(get(em, f"/api/systemSessions/{target.id}/events", token).content)
        clock.set(target.created + timedelta(minutes=10))
        done = parse_xml(get(em, f"/api/systemSessions/{target.id}/events", token).content)
        assert 0 < len(running) < len(done)
        assert text(done[-1], "Message") == "Data collection job finished."


def test_unknown_session_is_404(em: SimulatedEM) -> None:
    token = logon(em)
    for suffix in ("", "?format=Entity", "/events"):
        response = get(
            em, f"/api/systemSessions/00000000-0000-4000-8000-000000000000{suffix}", token
        )
        assert response.status_code == 404
        assert parse_xml(response.content).get("StatusCode") == "404"


def test_gzip_when_asked(em: SimulatedEM) -> None:
    token = logon(em)
    zipped = get(em, "/api/systemSessions", token, **{"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert int(zipped.headers["Content-Length"]) < len(zipped.content)
    plain = requests.get(
        em.url + "/api/systemSessions",
        headers={"X-RestSvcSessionId": token, "Accept-Encoding": "identity"},
        timeout=10,
    )
    assert "Content-Encoding" not in plain.headers
    assert int(plain.headers["Content-Length"]) == len(plain.content)
    assert zipped.content == plain.content


def test_empty_collection_is_valid(clock: ManualClock) -> None:
    with SimulatedEM(SimulatorSettings(history_days=0, live=False), clock=clock) as em:
        token = logon(em)
        root = parse_xml(get(em, "/api/systemSessions", token).content)
        assert root.tag == Q + "SystemSessions" and len(root) == 0
        assert get(em, "/api/systemSessions", token, Accept="application/json").json() == {
            "Sessions": []
        }


def test_special_characters_are_escaped(em: SimulatedEM) -> None:
    message = 'Path "C:\\A&B" <x>\ttab\nline \x01 end'
    em.add_session("CollectJob", state="Failed", ended=T0, message=message)
    token = logon(em)
    root = parse_xml(get(em, "/api/systemSessions", token).content)
    texts = [text(i, "Result/Message") for i in root]
    assert 'Path "C:\\A&B" <x>\ttab\nline \ufffd end' in texts
    body = get(em, "/api/systemSessions", token, Accept="application/json").json()
    assert message in [i["Result"]["Message"] for i in body["Sessions"]]


def test_records_times_are_aware_utc(em: SimulatedEM) -> None:
    assert all(s.created.tzinfo is UTC for s in em.sessions())
