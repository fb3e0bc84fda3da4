"""The parser over recorded-style answers: timestamps in every form, the running and result
rules, XML and JSON quirks (v12 and v13 key casing, BOM, collection shapes, wrong types),
unreadable entries and documents, entities never resolved, and flat memory while streaming."""

from __future__ import annotations

import io
import itertools
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from exporter.parse import (
    ParseError,
    SessionRecord,
    UnreadableEntry,
    iter_entries,
    iter_json,
    iter_xml,
    parse_timestamp,
)

FIXTURES = Path(__file__).parent / "fixtures"


def read(name: str, fmt: str = "xml") -> list[SessionRecord | UnreadableEntry]:
    with (FIXTURES / name).open("rb") as fh:
        return list(iter_entries(fh, "json" if fmt == "json" else "xml"))


def by_uid(entries: list[SessionRecord | UnreadableEntry]) -> dict[str, SessionRecord]:
    return {e.uid.rsplit(":", 1)[-1]: e for e in entries if isinstance(e, SessionRecord)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-27T17:05:52Z", 1737997552.0),
        ("2025-01-27T17:05:52.069837Z", 1737997552.069837),
        ("2025-01-27T17:05:52.7Z", 1737997552.7),
        ("2025-01-27T17:05:52.1234567Z", 1737997552.1234567),
        ("2025-01-27T17:05:52", 1737997552.0),  # no zone: UTC
        ("2025-01-27T19:05:52+02:00", 1737997552.0),
        ("2025-01-27T12:05:52-0500", 1737997552.0),
        ("  2025-01-27T17:05:52Z\n", 1737997552.0),
    ],
)
def test_timestamps_in_every_form(text: str, expected: float) -> None:
    assert parse_timestamp(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "0001-01-01T00:00:00",
        "0001-01-01T00:00:00Z",
        # SQL Server's smallest datetime, in any form and at any time of that day.
        "1753-01-01T00:00:00",
        "1753-01-01T00:00:00.000Z",
        "1753-01-01 12:30:00+01:00",
    ],
)
def test_no_time_values(text: str) -> None:
    assert parse_timestamp(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2025-13-01T00:00:00Z",
        "2025-02-30T00:00:00Z",
        "2025-01-27T24:00:00Z",
        "2025-01-27T23:60:00Z",
        "2025-01-27T23:59:60Z",
        "2025-01-27",
        "2025-01-27T17:05:52.12345678Z",
    ],
)
def test_unreadable_timestamps(text: str) -> None:
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_timestamp(text)


def test_veeam_reference_page_answer() -> None:
    entries = read("reference.xml")
    assert entries == [
        SessionRecord(
            uid="urn:veeam:SystemSession:00057ade-8f1a-4b54-a265-391441981e25",
            session_type="CollectJob",
            state="CompletedSuccessfully",
            created=pytest.approx(1674839152.069837),  # type: ignore[arg-type]
            ended=pytest.approx(1674839170.491337),  # type: ignore[arg-type]
            running=False,
            result="Success",
            canceled=False,
            message="",
        ),
        SessionRecord(
            uid="urn:veeam:SystemSession:00463c10-8196-4389-bd6b-8681c662e499",
            session_type="CatalogReplicationJob",
            state="CompletedSuccessfully",
            created=pytest.approx(1675096734.377016),  # type: ignore[arg-type]
            ended=pytest.approx(1675096748.988371),  # type: ignore[arg-type]
            running=False,
            result="Success",
            canceled=False,
            message="",
        ),
    ]


def test_xml_quirks() -> None:
    entries = read("quirks.xml")
    unreadable = [e for e in entries if isinstance(e, UnreadableEntry)]
    assert [u.why for u in unreadable] == [
        "no UID",
        "no CreationTimeUTC",
        "unreadable EndTimeUTC",
    ]
    s = by_uid(entries)
    assert s["a1"].running and s["a1"].ended is None and s["a1"].result == ""
    assert not s["a2"].running and s["a2"].result == "Warning"
    assert s["a2"].duration == pytest.approx(30.5)
    assert s["a3"].result == "Failed" and s["a3"].canceled is True
    assert s["a3"].created == pytest.approx(parse_timestamp("2025-01-27T01:00:00.1234567Z"))
    assert s["a3"].duration == pytest.approx(600.0)
    assert "timeout expired." in s["a3"].message
    # Unknown state, empty end and a silent result: running.
    assert s["a4"].running and s["a4"].state == "Starting"
    assert s["a4"].created == pytest.approx(parse_timestamp("2025-01-27T12:00:00.5Z"))
    # DateTime.MinValue end: running.
    assert s["a5"].running and s["a5"].state == "Idle"
    # New type, new state, new result word: finished with result Unknown.
    assert s["a6"].session_type == "FutureJob" and s["a6"].state == "Postponed"
    assert not s["a6"].running and s["a6"].result == "Unknown"
    # Final State, silent Result/Result, no end: finished by State, without a duration.
    assert not s["a7"].running and s["a7"].result == "Failed" and s["a7"].duration is None


def test_json_v12_pascal_case() -> None:
    entries = read("sessions_v12.json", "json")
    assert sum(isinstance(e, UnreadableEntry) for e in entries) == 2
    s = by_uid(entries)
    assert s["00057ade-8f1a-4b54-a265-391441981e25"].result == "Success"
    assert s["00057ade-8f1a-4b54-a265-391441981e25"].duration == pytest.approx(18.4215)
    running = s["00463c10-8196-4389-bd6b-8681c662e499"]
    assert running.running and running.ended is None and running.message == ""
    assert s["c3"].result == "Failed" and s["c3"].duration == pytest.approx(240.0)


def test_json_v13_camel_case_with_bom_reads_the_same() -> None:
    v12 = read("sessions_v12.json", "json")
    v13 = read("sessions_v13.json", "json")
    assert (FIXTURES / "sessions_v13.json").read_bytes().startswith(b"\xef\xbb\xbf")
    assert v13 == v12


@pytest.mark.parametrize(
    ("body", "count"),
    [
        (b"[]", 0),
        (b'{"sessions": null}', 0),
        (b'{"SESSIONS": []}', 0),
        (b'[{"uid":"u","creationTimeUtc":"2025-01-01T00:00:00Z","state":"Failed"}]', 1),
    ],
)
def test_json_collection_shapes(body: bytes, count: int) -> None:
    records = [e for e in iter_json(io.BytesIO(body)) if isinstance(e, SessionRecord)]
    assert len(records) == count


def test_json_wrong_field_type_is_one_unreadable_entry() -> None:
    body = b'[{"UID":"u","CreationTimeUTC":["no"]},{"UID":"v","CreationTimeUTC":"2025-01-01T00:00:00Z","State":"InProgress"}]'
    entries = list(iter_json(io.BytesIO(body)))
    assert isinstance(entries[0], UnreadableEntry)
    assert isinstance(entries[1], SessionRecord) and entries[1].running


def test_json_boolean_strings_for_canceled() -> None:
    body = b'[{"UID":"u","CreationTimeUTC":"2025-01-01T00:00:00Z","EndTimeUTC":"2025-01-01T00:00:01Z","State":"Failed","Result":{"IsCanceled":"True"}}]'
    (entry,) = iter_json(io.BytesIO(body))
    assert isinstance(entry, SessionRecord) and entry.canceled


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"Sessions": 5}', b'{"Other": []}', b"42", b"\xff\xfe"],
)
def test_unreadable_json_documents(body: bytes) -> None:
    with pytest.raises(ParseError):
        list(iter_json(io.BytesIO(body)))


def test_an_answer_with_a_dtd_is_refused_before_any_entity_is_read() -> None:
    # The EM never sends a DTD. Refusing one is what guarantees that no entity (a file, a
    # URL, or a billion laughs) is ever expanded: a streaming parser would expand internal ones.
    with pytest.raises(ParseError, match="DTD") as caught:
        read("xxe.xml")
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    if hostname:
        assert hostname not in str(caught.value)
    assert "lol" not in str(caught.value)


def test_an_undeclared_entity_is_malformed() -> None:
    body = b"<SystemSessions><Sessions><Message>&lol;</Message></Sessions></SystemSessions>"
    with pytest.raises(ParseError, match="malformed XML"):
        list(iter_xml(io.BytesIO(body)))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.xml", "malformed XML"),
        ("references.xml", "references instead of entities"),
    ],
)
def test_unreadable_xml_documents(name: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        read(name)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "malformed XML|empty"),
        (b"<html><body>Service Unavailable</body></html>", "unexpected root element 'html'"),
        (b"<SystemSessions><Sessions", "malformed XML"),
    ],
)
def test_other_unreadable_xml(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        list(iter_xml(io.BytesIO(body)))


def test_empty_collection_is_valid() -> None:
    body = b'<SystemSessions xmlns="http://www.veeam.com/ent/v1.0"></SystemSessions>'
    assert list(iter_xml(io.BytesIO(body))) == []


def test_nested_sessions_element_is_not_an_entry() -> None:
    body = (
        b'<SystemSessions><Sessions UID="u1"><Links><Sessions UID="nested"/></Links>'
        b"<CreationTimeUTC>2025-01-01T00:00:00Z</CreationTimeUTC><State>InProgress</State>"
        b"</Sessions></SystemSessions>"
    )
    entries = list(iter_xml(io.BytesIO(body)))
    assert [e.uid for e in entries if isinstance(e, SessionRecord)] == ["u1"]


def session_xml(i: int) -> bytes:
    """One collection item as the EM writes it."""
    return (
        f'<Sessions Href="https://em/api/systemSessions/{i}?format=Entity" '
        f'Type="SystemSession" Name="Collect Job @2025-01-27 17:05:52.069837" '
        f'UID="urn:veeam:SystemSession:{i:08d}-8f1a-4b54-a265-391441981e25">'
        '<Links><Link Href="https://em/api/systemSessions/x" Rel="Alternate"/></Links>'
        "<SessionType>CollectJob</SessionType>"
        "<CreationTimeUTC>2025-01-27T17:05:52.069837Z</CreationTimeUTC>"
        "<EndTimeUTC>2025-01-27T17:06:10.491337Z</EndTimeUTC>"
        "<State>CompletedSuccessfully</State><Result><Result>CompletedSuccessfully"
        "</Result><Message/><IsCanceled>false</IsCanceled></Result></Sessions>"
    ).encode()


class LazyStream(io.RawIOBase):
    """An answer produced lazily, as a socket would deliver it; counts the reads asked of it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self.reads += 1
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class _ChunkedXML(LazyStream):
    """A large answer of ordinary sessions."""

    def __init__(self, sessions: int) -> None:
        super().__init__(self._generate(sessions))

    @staticmethod
    def _generate(sessions: int) -> Iterator[bytes]:
        yield b'<SystemSessions xmlns="http://www.veeam.com/ent/v1.0">'
        for i in range(sessions):
            yield session_xml(i)
        yield b"</SystemSessions>"


_RSS_PROBE = """
import resource, sys
sys.path.insert(0, sys.argv[2])
from test_parse import _ChunkedXML
from exporter.parse import iter_xml
n = int(sys.argv[1])
assert sum(1 for _ in iter_xml(_ChunkedXML(n))) == n
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_kib(sessions: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(sessions), str(Path(__file__).parent)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


def test_xml_memory_does_not_grow_with_the_collection() -> None:
    # libxml2 allocates outside Python's heap, so peak RSS of a fresh process is measured.
    # 100,000 sessions are about 55 MB of XML; held as one tree they would take hundreds of
    # MB. Streamed, the peak stays within a few MB of a 5,000-session answer.
    small = _peak_rss_kib(5_000)
    large = _peak_rss_kib(100_000)
    assert large - small < 8 * 1024, (small, large)


@pytest.mark.parametrize(
    ("head", "starts_with"),
    [(b"\x00" * 65536, "'\\x00'"), (b"<html><body>Service Unavailable", "'<'"), (b"x", "'x'")],
)
def test_a_json_answer_that_is_no_json_fails_on_its_first_read(
    head: bytes, starts_with: str
) -> None:
    # JSON is read whole: an endless answer of junk must not be read up to the size cap.
    endless = LazyStream(itertools.chain([head], itertools.repeat(b"\x00" * 65536)))
    with pytest.raises(ParseError, match=f"the answer starts with {re.escape(starts_with)}"):
        list(iter_json(endless))  # type: ignore[arg-type]
    assert endless.reads <= 2


def test_blanks_before_a_json_answer_are_fine_up_to_a_mebibyte() -> None:
    body = b'{"Sessions": []}'
    assert list(iter_json(io.BytesIO(b" \r\n\t" * 30_000 + body))) == []
    with pytest.raises(ParseError, match="more than 1 MiB of blanks"):
        list(iter_json(io.BytesIO(b" " * (1024 * 1024 + 70_000) + body)))
