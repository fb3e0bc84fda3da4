"""The parser against hostile or odd answers: text that would make the exposition
unencodable, over-long names and messages, shapes that would make a tree grow (nested
Sessions, references lists, unknown children, huge attributes and text), wrong roots that
must fail at once, element names in any case, and SQL Server's smallest date."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from test_alerts import tool
from test_parse import LazyStream, session_xml

from exporter.collector import SessionCollector
from exporter.emformat import repaired_utf8
from exporter.parse import (
    MESSAGE_READ_LIMIT,
    NAME_LIMIT,
    STALL_LIMIT,
    UID_LIMIT,
    Entry,
    ParseError,
    SessionRecord,
    UnreadableEntry,
    cut_message,
    iter_entries,
    iter_json,
    iter_xml,
)
from exporter.snapshot import MESSAGE_LIMIT as RENDERED_MESSAGE_LIMIT
from exporter.snapshot import FinishedLedger, build, clean_message
from exporter.state import ServerState

FFFD = "\ufffd"
CREATED, ENDED = "2025-01-27T17:05:52Z", "2025-01-27T17:06:10Z"


def xml_item(
    session_type: bytes = b"CollectJob",
    state: bytes = b"Failed",
    message: bytes = b"The RPC server is unavailable.",
    uid: bytes = b"urn:veeam:SystemSession:1",
) -> bytes:
    return (
        b'<Sessions UID="' + uid + b'">'
        b"<SessionType>" + session_type + b"</SessionType>"
        b"<CreationTimeUTC>" + CREATED.encode() + b"</CreationTimeUTC>"
        b"<EndTimeUTC>" + ENDED.encode() + b"</EndTimeUTC>"
        b"<State>" + state + b"</State>"
        b"<Result><Result>Failed</Result><Message>" + message + b"</Message>"
        b"<IsCanceled>false</IsCanceled></Result></Sessions>"
    )


def xml_answer(**fields: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="utf-8"?>'
        b'<SystemSessions xmlns="http://www.veeam.com/ent/v1.0">'
        + xml_item(**fields)
        + b"</SystemSessions>"
    )


def json_item(
    session_type: str = "CollectJob",
    state: str = "Failed",
    message: str = "The RPC server is unavailable.",
    uid: str = "urn:veeam:SystemSession:1",
) -> dict[str, Any]:
    return {
        "UID": uid,
        "SessionType": session_type,
        "State": state,
        "CreationTimeUTC": CREATED,
        "EndTimeUTC": ENDED,
        "Result": {"Result": "Failed", "Message": message, "IsCanceled": False},
    }


def json_answer(**fields: str) -> bytes:
    # ensure_ascii writes a lone surrogate as the escape an EM could send: "\ud800".
    return json.dumps({"Sessions": [json_item(**fields)]}, ensure_ascii=True).encode()


def lazy(chunks: Iterable[bytes]) -> IO[bytes]:
    return cast(IO[bytes], LazyStream(chunks))


def only(entries: list[Entry]) -> Entry:
    assert len(entries) == 1, entries
    return entries[0]


def record(entries: list[Entry]) -> SessionRecord:
    entry = only(entries)
    assert isinstance(entry, SessionRecord), entry
    return entry


def xml(body: bytes) -> list[Entry]:
    return list(iter_xml(io.BytesIO(body)))


def js(body: bytes) -> list[Entry]:
    return list(iter_json(io.BytesIO(body)))


# --- label values are always valid text ---------------------------------------------------

# Each way an answer can carry text that is not valid UTF-8, with the field it sits in.
HOSTILE = [
    pytest.param("json", "session_type", b"Collect\\ud800Job", id="json-SessionType-surrogate"),
    pytest.param("json", "state", b"Stuck\\udfff", id="json-State-surrogate"),
    pytest.param("json", "message", b"RPC \\udbff failed", id="json-Message-surrogate"),
    pytest.param("json", "session_type", b"Collect\xffJob", id="json-SessionType-byte"),
    pytest.param("json", "message", b"RPC \xed\xa0\x80 failed", id="json-Message-utf8-surrogate"),
    pytest.param("xml", "session_type", b"Collect\xffJob", id="xml-SessionType-byte"),
    pytest.param("xml", "state", b"Stuck\xed\xa0\x80", id="xml-State-utf8-surrogate"),
    pytest.param("xml", "message", b"RPC \xc0\xaf failed", id="xml-Message-overlong"),
    pytest.param("xml", "message", b"RPC \xe2\x82 failed", id="xml-Message-truncated"),
]
_MARK = "MARK"  # stands for the hostile bytes in an answer built around it


def hostile_answer(fmt: str, field: str, raw: bytes) -> bytes:
    body = xml_answer(**{field: _MARK.encode()}) if fmt == "xml" else json_answer(**{field: _MARK})
    return body.replace(_MARK.encode(), raw)


@pytest.mark.parametrize(("fmt", "field", "raw"), HOSTILE)
def test_hostile_text_becomes_replacement_characters(fmt: str, field: str, raw: bytes) -> None:
    entries = list(iter_entries(io.BytesIO(hostile_answer(fmt, field, raw)), fmt))  # type: ignore[arg-type]
    value = getattr(record(entries), field)
    assert FFFD in value
    value.encode("utf-8")  # strict: raises on anything unencodable


def _render(entries: list[Entry]) -> tuple[bytes, bytes]:
    """An answer through the whole data path: the snapshot, a ledger that counts it (after
    an empty baseline), the collector; the text and the OpenMetrics expositions."""
    ledger = FinishedLedger()
    now = time.time()
    empty = build([], taken_at=now, allows=lambda _: True, already_counted=ledger.__contains__)
    ledger.commit(empty, now=now)
    result = build(
        entries, taken_at=now, allows=lambda _: True, already_counted=ledger.__contains__
    )
    view = ledger.commit(result, now=now)
    state = ServerState(server="em01", stale_after=1e9, snapshot=result.snapshot, ledger=view)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SessionCollector(lambda: [state]))
    return generate_latest(registry), generate_openmetrics(registry)  # type: ignore[no-untyped-call]


_LABEL = {"session_type": "session_type", "state": "state", "message": "message"}


@pytest.mark.parametrize(("fmt", "field", "raw"), HOSTILE)
def test_hostile_text_renders_an_exposition_promtool_accepts(
    fmt: str, field: str, raw: bytes
) -> None:
    entries = list(iter_entries(io.BytesIO(hostile_answer(fmt, field, raw)), fmt))  # type: ignore[arg-type]
    text, openmetrics = _render(entries)
    text.decode("utf-8")  # strict
    check = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    labels = [
        sample.labels[_LABEL[field]]
        for family in text_string_to_metric_families(openmetrics.decode())  # type: ignore[no-untyped-call]
        for sample in family.samples
        if _LABEL[field] in sample.labels
    ]
    # The value the EM sent, with its bad part replaced, reaches the exposition intact.
    assert any(FFFD in label for label in labels), labels
    assert f'{_LABEL[field]}="'.encode() in text and FFFD.encode() in text
    # A counted session of the hostile type is there too, whatever field was hostile.
    assert b"veeam_em_system_sessions_finished_total{" in text


def test_a_character_split_across_reads_is_kept_whole() -> None:
    message = "Échec de l\u2019opération"
    body = xml_answer(message=message.encode())
    cut = body.index("\u2019".encode()) + 1  # inside the three bytes of the apostrophe
    chunks = [body[:cut], body[cut:]]
    assert record(list(iter_xml(lazy(chunks)))).message == message
    one_byte_reads = lazy(body[i : i + 1] for i in range(len(body)))
    assert record(list(iter_xml(one_byte_reads))).message == message
    assert b"".join(repaired_utf8([b"ok \xe2\x82"])) == "ok \ufffd".encode()


def test_a_declared_single_byte_encoding_is_decoded_not_replaced() -> None:
    body = xml_answer(message="Échec".encode("latin-1")).replace(b"utf-8", b"ISO-8859-1")
    assert record(xml(body)).message == "Échec"


def test_a_utf16_answer_reads_like_utf8() -> None:
    body = xml_answer().decode().replace("utf-8", "utf-16").encode("utf-16")
    assert record(xml(body)) == record(xml(xml_answer()))


# --- names and UIDs have a length limit -----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "limit", "why"),
    [
        ("session_type", NAME_LIMIT, "SessionType longer than 100 characters"),
        ("state", NAME_LIMIT, "State longer than 100 characters"),
        ("uid", UID_LIMIT, "UID longer than 256 characters"),
    ],
)
def test_an_over_long_name_makes_the_entry_unreadable(field: str, limit: int, why: str) -> None:
    at_limit, over = "A" * limit, "A" * (limit + 1)
    padded = " \n" * 3000 + at_limit + "\t" * 3000  # whitespace around a value never counts
    inner = "A" * (limit // 2) + " " * 3000 + "B"  # whitespace inside it does
    for value, readable in [(at_limit, True), (padded, True), (over, False), (inner, False)]:
        for entries in (
            xml(xml_answer(**{field: value.encode()})),
            js(json_answer(**{field: value})),
        ):
            entry = only(entries)
            if readable:
                assert isinstance(entry, SessionRecord)
                assert getattr(entry, field) == at_limit
            else:
                assert entry == UnreadableEntry(why)


def test_an_over_long_name_is_skipped_not_a_failed_poll() -> None:
    body = b"<SystemSessions>" + xml_item(session_type=b"X" * 5000) + session_xml(2)
    result = build(
        iter_xml(io.BytesIO(body + b"</SystemSessions>")),
        taken_at=0.0,
        allows=lambda _: True,
        already_counted=lambda _: False,
    )
    assert result.skipped == 1
    assert set(result.snapshot.types) == {"CollectJob"}


def test_text_made_of_character_references_is_read_in_bounded_pieces() -> None:
    # Each reference reaches the parser's target as its own piece of text.
    name = b"&#32;" * 5000 + b"Collect&#74;ob" + b"&#9;" * 5000
    assert record(xml(xml_answer(session_type=name))).session_type == "CollectJob"
    assert only(xml(xml_answer(state=b"&#65;" * 101))) == UnreadableEntry(
        "State longer than 100 characters"
    )


def _random_text(rng: random.Random, pool: str = "aBé中 \t\n\u00a0\u2028\u3000\x1c") -> str:
    runs = [rng.choice(pool) * rng.choice([1, 1, 2, 50, 700]) for _ in range(rng.randint(0, 12))]
    return "".join(runs)


def test_xml_and_json_agree_on_every_field_whatever_its_whitespace() -> None:
    # Long XML text is compacted while it is read, and text written as character references
    # arrives one character at a time; either way it must end in the verdict JSON reaches
    # from the whole string. (\x1c is whitespace too, but XML cannot carry it.)
    rng = random.Random(20261202)
    for i in range(300):
        fields = {
            name: _random_text(rng, "aBé中 \t\n\u00a0\u2028\u3000")
            for name in ("session_type", "state", "message")
        }
        encoded = {name: value.encode() for name, value in fields.items()}
        if i % 2:
            encoded = {name: value.replace(b" ", b"&#32;") for name, value in encoded.items()}
        assert xml(xml_answer(**encoded)) == js(json_answer(**fields)), fields


# --- the failure message is cut when it is read ---------------------------------------------


def test_the_message_is_kept_longer_than_the_label_shows() -> None:
    # The label is cut after redaction; the kept text must reach well past the label's edge.
    assert MESSAGE_READ_LIMIT >= 4 * RENDERED_MESSAGE_LIMIT


def test_cut_message_is_idempotent_and_renders_as_the_whole_message_would() -> None:
    rng = random.Random(7)
    samples = [_random_text(rng) for _ in range(2000)]
    samples += ["a" * 199 + " b", " " * 100_000 + "x  y", "z" * 70_000, "\u3000" * 70_000]
    for message in samples:
        cut = cut_message(message)
        assert len(cut) <= MESSAGE_READ_LIMIT
        assert cut_message(cut) == cut
        # The label shows the same as it would have shown for the whole message.
        assert clean_message(cut).rstrip() == clean_message(message).rstrip()


def test_a_long_message_is_cut_in_the_record() -> None:
    words = "The RPC server is unavailable.\r\n\t " * 100_000  # 3.5 MB
    expected = cut_message(words)
    # Cut at the limit, less a space that the cut left at the end.
    assert (
        MESSAGE_READ_LIMIT - 1 <= len(expected) <= MESSAGE_READ_LIMIT
        and "  " not in expected
        and "\n" not in expected
    )
    assert record(xml(xml_answer(message=words.encode()))).message == expected
    assert record(js(json_answer(message=words))).message == expected


# --- flat memory, and wrong answers fail at once --------------------------------------------

_ITEM_HEAD = (
    b'<SystemSessions xmlns="http://www.veeam.com/ent/v1.0">'
    b'<Sessions UID="urn:veeam:SystemSession:outer" Name="outer">'
)
_ITEM_TAIL = (
    b"<SessionType>CollectJob</SessionType><CreationTimeUTC>2025-01-27T17:05:52Z"
    b"</CreationTimeUTC><State>InProgress</State></Sessions></SystemSessions>"
)


def normal_answer() -> Iterator[bytes]:
    yield b'<SystemSessions xmlns="http://www.veeam.com/ent/v1.0">'
    for i in range(5_000):
        yield session_xml(i)
    yield b"</SystemSessions>"


def nested_sessions() -> Iterator[bytes]:
    """100,000 full sessions one level below a collection item (60 MB)."""
    yield _ITEM_HEAD
    for i in range(100_000):
        yield session_xml(i)
    yield _ITEM_TAIL


def references_list() -> Iterator[bytes]:
    """A Links list of 1,000,000 children in one item (75 MB)."""
    yield _ITEM_HEAD + b"<Links>"
    for i in range(1_000_000):
        yield f'<Link Href="https://em/api/systemSessions/{i}?format=Entity" Rel="Alternate"/>'.encode()
    yield b"</Links>" + _ITEM_TAIL


def unknown_children() -> Iterator[bytes]:
    """1,000,000 children the parser does not know, with text and children (60 MB)."""
    yield _ITEM_HEAD
    for i in range(1_000_000):
        yield f'<Extra n="{i}">some text<Deeper>more</Deeper></Extra>'.encode()
    yield _ITEM_TAIL


def huge_attributes() -> Iterator[bytes]:
    """200 links with a 512 KiB attribute each (100 MB)."""
    yield _ITEM_HEAD + b"<Links>"
    for _ in range(200):
        yield b'<Link Href="' + b"h" * (512 * 1024) + b'"/>'
    yield b"</Links>" + _ITEM_TAIL


def one_endless_attribute() -> Iterator[bytes]:
    """A 100 MB attribute: libxml2 would hold it whole."""
    yield _ITEM_HEAD + b'<Link Href="'
    for _ in range(1600):
        yield b"h" * 65536
    yield b'"/>' + _ITEM_TAIL


def huge_message() -> Iterator[bytes]:
    """A finished session whose message is 100 MB."""
    yield _ITEM_HEAD + b"<Result><Result>Failed</Result><Message>"
    for _ in range(1600):
        yield b"The RPC server is unavailable. " * 2114
    yield b"</Message></Result>" + _ITEM_TAIL


def references_root() -> Iterator[bytes]:
    """An EntityReferences answer of 1,000,000 references."""
    yield b'<EntityReferences xmlns="http://www.veeam.com/ent/v1.0">'
    for i in range(1_000_000):
        yield f'<Ref UID="urn:veeam:SystemSession:{i}" Name="x" Href="https://em/x/{i}"/>'.encode()
    yield b"</EntityReferences>"


_PROBE = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
import test_parse_hostile as t
from exporter.parse import ParseError, SessionRecord, iter_xml
records = unreadable = longest = 0
try:
    for entry in iter_xml(t.LazyStream(getattr(t, sys.argv[2])())):
        if isinstance(entry, SessionRecord):
            records += 1
            longest = max(longest, len(entry.message))
        else:
            unreadable += 1
    outcome = f"{records} records, {unreadable} unreadable, message {longest}"
except ParseError as exc:
    outcome = f"ParseError: {exc}"[:120]
print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, outcome]))
"""

_HOSTILE_SHAPES: dict[str, Callable[[], Iterator[bytes]]] = {
    "nested_sessions": nested_sessions,
    "references_list": references_list,
    "unknown_children": unknown_children,
    "huge_attributes": huge_attributes,
    "one_endless_attribute": one_endless_attribute,
    "huge_message": huge_message,
    "references_root": references_root,
}
_OUTCOMES = {
    "normal_answer": "5000 records, 0 unreadable, message 0",
    "nested_sessions": "1 records, 0 unreadable, message 0",
    "references_list": "1 records, 0 unreadable, message 0",
    "unknown_children": "1 records, 0 unreadable, message 0",
    "huge_attributes": "1 records, 0 unreadable, message 0",
    "one_endless_attribute": "ParseError: a single XML tag, attribute or comment longer than 1 MiB",
    "huge_message": "1 records, 0 unreadable, message 999",
    "references_root": "ParseError: the EM answered references instead of entities",
}


def test_hostile_shapes_stay_within_a_normal_answers_memory() -> None:
    # libxml2 allocates outside Python's heap, so each answer's peak RSS is measured in a
    # fresh process; all run at once. Before, 100,000 nested Sessions held 395 MB and a
    # references list grew to 351 MB before the poll failed.
    here = str(Path(__file__).parent)
    names = ["normal_answer", *_HOSTILE_SHAPES]
    probes = {
        name: subprocess.Popen(
            [sys.executable, "-c", _PROBE, here, name], stdout=subprocess.PIPE, text=True
        )
        for name in names
    }
    results: dict[str, tuple[int, str]] = {}
    for name, probe in probes.items():
        out, _ = probe.communicate(timeout=300)
        assert probe.returncode == 0, name
        peak, outcome = json.loads(out)
        results[name] = (peak, outcome)
    normal = results["normal_answer"][0]
    for name, (peak, outcome) in results.items():
        assert outcome.startswith(_OUTCOMES[name]), (name, outcome)
        assert peak - normal < 8 * 1024, (name, peak, normal)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b'<EntityReferences xmlns="http://www.veeam.com/ent/v1.0">', "references instead"),
        (b"<html><body>", "unexpected root element 'html'"),
        (b'<?xml version="1.0"?><!DOCTYPE SystemSessions [', "DTD"),
    ],
)
def test_a_wrong_answer_fails_on_its_first_read(head: bytes, message: str) -> None:
    endless = (b"<Ref/>" * 10_000 for _ in range(10**9))
    stream = LazyStream(_chain(head, endless))  # the head on its own, then no end
    with pytest.raises(ParseError, match=message):
        next(iter_xml(cast(IO[bytes], stream)))
    assert stream.reads <= 2


def _chain(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from rest


def test_a_huge_comment_is_refused_once_it_passes_the_stall_limit() -> None:
    body = _ITEM_HEAD + b"<!--" + b"c" * (2 * STALL_LIMIT) + b"-->" + _ITEM_TAIL
    with pytest.raises(ParseError, match="longer than 1 MiB"):
        xml(body)
    # A long text is no stall: it arrives piece by piece.
    text = _ITEM_HEAD + b"<Extra>" + b"t" * (4 * STALL_LIMIT) + b"</Extra>" + _ITEM_TAIL
    assert record(xml(text)).uid.endswith("outer")


# --- element names in any case, and the SQL Server minimum date -----------------------------


def test_xml_element_names_match_in_any_case() -> None:
    canonical = record(xml(xml_answer()))
    odd = (
        b'<v:systemsessions xmlns:v="http://www.veeam.com/ent/v1.0">'
        b'<v:SESSIONS uid="urn:veeam:SystemSession:1"><v:sessiontype>CollectJob</v:sessiontype>'
        b"<v:CreationTimeUtc>" + CREATED.encode() + b"</v:CreationTimeUtc>"
        b"<v:endTimeUtc>" + ENDED.encode() + b"</v:endTimeUtc><v:STATE>Failed</v:STATE>"
        b"<v:result><v:RESULT>Failed</v:RESULT><v:message>The RPC server is unavailable."
        b"</v:message><v:isCanceled>false</v:isCanceled></v:result></v:SESSIONS>"
        b"</v:systemsessions>"
    )
    assert record(xml(odd)) == canonical


def test_only_text_before_a_fields_first_child_counts() -> None:
    body = xml_answer(session_type=b"Collect<b>x</b>Job", message=b"kept<i/>dropped")
    entry = record(xml(body))
    assert entry.session_type == "Collect" and entry.message == "kept"
    # A Result with parts: its own text says nothing; an unknown part leaves no result.
    parts = xml_answer().replace(b"<Result><Result>Failed</Result>", b"<Result>Failed<Other/>")
    entry = record(xml(parts.replace(b"<State>Failed</State>", b"<State>Unheard</State>")))
    assert entry.result == "Unknown"


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_sql_server_minimum_date_means_no_time(fmt: str) -> None:
    no_end = "1753-01-01T00:00:00"
    if fmt == "xml":
        body = xml_answer(state=b"Working").replace(ENDED.encode(), no_end.encode())
        body = body.replace(b"<Result>Failed</Result>", b"<Result>None</Result>")
        created = xml(body.replace(CREATED.encode(), no_end.encode()))
        entry = record(xml(body))
    else:
        item = json_item(state="Working")
        item["EndTimeUTC"] = no_end
        item["Result"]["Result"] = "None"
        entry = record(js(json.dumps([item]).encode()))
        item["CreationTimeUTC"] = no_end
        created = js(json.dumps([item]).encode())
    assert entry.running and entry.ended is None and entry.result == ""
    assert only(created) == UnreadableEntry("no CreationTimeUTC")
