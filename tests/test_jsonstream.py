"""A JSON answer read as a stream reads exactly as the whole answer decoded at once would
(``json.loads``, keys folded to lower case), whatever its reads: split at every byte, characters
cut in two, items bigger than the scanner's window read token by token. An answer that turns
out bad after good entries fails whole. Deep nesting, huge strings, huge lists and huge keys
fail or pass in the memory of a normal answer."""

from __future__ import annotations

import _json
import io
import json
import json.scanner
import random
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, cast

import pytest
from test_parse import LazyStream

import exporter.jsonstream as jsonstream
from exporter.emformat import fold_keys, strip_bom
from exporter.parse import (
    MESSAGE_READ_LIMIT,
    NAME_LIMIT,
    UID_LIMIT,
    Entry,
    ParseError,
    SessionRecord,
    UnreadableEntry,
    _text,
    iter_json,
    make_record,
)
from exporter.snapshot import build

FIXTURES = Path(__file__).parent / "fixtures"
Outcome = list[Entry] | str  # the entries, or "error" for a ParseError


# --- the definition: the whole answer decoded at once ---------------------------------------


def _entry_by_folding(item: Any) -> Entry:
    """An item read by folding its keys: how every item was read before the answer was
    streamed."""
    if not isinstance(item, Mapping):
        return UnreadableEntry("not an object")
    fields = fold_keys(item)
    try:
        raw_result = fields.get("result")
        if isinstance(raw_result, Mapping):
            res = fold_keys(raw_result)
            result, message = _text(res.get("result")), _text(res.get("message"))
            canceled = res.get("iscanceled")
        else:
            result, message, canceled = _text(raw_result), None, None
        if canceled is not None and not isinstance(canceled, bool):
            canceled = _text(canceled)
        return make_record(
            uid=_text(fields.get("uid")),
            session_type=_text(fields.get("sessiontype")),
            state=_text(fields.get("state")),
            created=_text(fields.get("creationtimeutc")),
            ended=_text(fields.get("endtimeutc")),
            result=result,
            message=message,
            canceled=canceled,
        )
    except TypeError:
        return UnreadableEntry("a field has the wrong JSON type")


def whole(body: bytes) -> Outcome:
    """What the answer reads as when it is decoded whole: BOM dropped, UTF-8 (or the
    UTF-16/32 that JSON allows) with each undecodable byte replaced by U+FFFD."""
    body = strip_bom(body)
    text = body.decode(json.detect_encoding(body), "replace")
    if text.lstrip(" \t\r\n\ufeff")[:1] not in ("{", "["):
        return "error"
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return "error"
    items: Any = document
    if isinstance(document, dict):
        items = fold_keys(document).get("sessions", ...)
        if items is ...:
            return "error"
        items = [] if items is None else items
    if not isinstance(items, list):
        return "error"
    return [_entry_by_folding(item) for item in items]


def streamed(chunks: Iterable[bytes]) -> Outcome:
    try:
        return list(iter_json(cast(IO[bytes], LazyStream(chunks))))
    except ParseError:
        return "error"


def one_byte_reads(body: bytes) -> Iterator[bytes]:
    return (body[i : i + 1] for i in range(len(body)))


@pytest.fixture
def tiny_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader reads a byte at a time: every position is the window's end once."""
    monkeypatch.setattr(jsonstream, "_READ_SIZE", 1)


@pytest.fixture
def token_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value longer than a few characters is read token by token, strings in the
    smallest slices, through windows a byte at a time."""
    monkeypatch.setattr(jsonstream, "_READ_SIZE", 1)
    monkeypatch.setattr(jsonstream, "BIG_VALUE", 4)
    monkeypatch.setattr(jsonstream, "_STRING_SLICE", 1)


# An answer with what a read can cut: multibyte characters, escapes (a surrogate pair, a lone
# surrogate), numbers, blanks, keys in both casings, members before and after the array.
SPLIT_BODY = (
    '\ufeff{"Links": [{"Rel": "Up", "Href": "https://em/api/"}], "sessions": [\n'
    ' {"UID": "urn:veeam:SystemSession:1", "SessionType": "Coll\\u00e9ctJob", "State": "Failed",'
    ' "CreationTimeUTC": "2025-01-27T17:05:52.1234567Z", "EndTimeUTC": "2025-01-27T17:06:10Z",'
    ' "Result": {"Result": "Failed", "Message": "\u00c9chec de l\u2019op\u00e9ration \U0001f600'
    ' \\ud83d\\ude00 \\ud800 \\"quoted\\"\\t\\\\", "IsCanceled": 1.5e+3}, "Links": null},\n'
    ' {"uid": "urn:veeam:SystemSession:2", "sessionType": "\u4e2d\u6587", "state": "InProgress",'
    ' "creationTimeUTC": "2025-01-27T17:05:52+02:00", "endTimeUTC": null, "result": {"result":'
    ' "None", "message": null, "isCanceled": false}},\n'
    ' 42, {"UID": "x", "CreationTimeUTC": ["no"]},'
    ' {"UID": "u3", "CreationTimeUTC": "2025-01-27T17:05:52Z", "State": "Success", "Result": "1e3"}'
    '\n], "Href": "https://em/api/systemSessions", "Count": -12.5e-1}'
).encode("utf-8")


def test_the_split_body_is_what_it_claims_to_be() -> None:
    entries = whole(SPLIT_BODY)
    assert isinstance(entries, list)
    assert [type(e).__name__ for e in entries] == [
        "SessionRecord",
        "SessionRecord",
        "UnreadableEntry",
        "UnreadableEntry",
        "SessionRecord",
    ]
    first = entries[0]
    assert isinstance(first, SessionRecord)
    assert first.message.startswith("\u00c9chec de l\u2019op\u00e9ration \U0001f600 \U0001f600")
    assert first.session_type == "Coll\u00e9ctJob" and not first.canceled


# --- the same entries, whatever the reads ---------------------------------------------------


@pytest.mark.parametrize("name", ["sessions_v12.json", "sessions_v13.json"])
@pytest.mark.usefixtures("tiny_window")
def test_a_fixture_read_a_byte_at_a_time_reads_as_a_whole(name: str) -> None:
    body = (FIXTURES / name).read_bytes()
    expected = whole(body)
    assert isinstance(expected, list) and len(expected) > 3
    assert streamed(one_byte_reads(body)) == expected
    assert streamed([body]) == expected


@pytest.mark.usefixtures("tiny_window")
def test_every_boundary_between_two_reads_reads_as_a_whole() -> None:
    expected = whole(SPLIT_BODY)
    for cut in range(1, len(SPLIT_BODY)):
        assert streamed([SPLIT_BODY[:cut], SPLIT_BODY[cut:]]) == expected, cut
    assert streamed(one_byte_reads(SPLIT_BODY)) == expected


@pytest.mark.usefixtures("token_reader")
def test_every_boundary_reads_as_a_whole_token_by_token() -> None:
    expected = whole(SPLIT_BODY)
    for cut in range(1, len(SPLIT_BODY), 7):
        assert streamed([SPLIT_BODY[:cut], SPLIT_BODY[cut:]]) == expected, cut
    assert streamed(one_byte_reads(SPLIT_BODY)) == expected


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32-be"])
@pytest.mark.usefixtures("tiny_window")
def test_utf16_and_utf32_answers_split_anywhere_read_as_a_whole(encoding: str) -> None:
    body = SPLIT_BODY.decode("utf-8").lstrip("\ufeff").encode(encoding)
    expected = whole(body)
    assert expected == whole(SPLIT_BODY)
    assert streamed(one_byte_reads(body)) == expected


def test_a_character_cut_by_a_read_is_kept_whole() -> None:
    message = "\u00c9chec de l\u2019op\u00e9ration \U0001f600"
    item = {"UID": "u", "CreationTimeUTC": "2025-01-27T17:05:52Z", "State": "Failed"}
    body = json.dumps([{**item, "Result": {"Message": message}}], ensure_ascii=False).encode()
    start = body.index("\u2019".encode())
    for cut in range(start, start + len("\u2019 op\u00e9ration \U0001f600".encode())):
        (entry,) = cast(list[Entry], streamed([body[:cut], body[cut:]]))
        assert isinstance(entry, SessionRecord) and entry.message == message, cut


def test_a_read_that_stops_inside_the_byte_order_mark_is_no_junk() -> None:
    body = b'\xef\xbb\xbf{"Sessions": []}'
    assert streamed(one_byte_reads(body)) == []
    assert streamed([body[:1], body[1:]]) == []


def test_items_are_yielded_before_the_rest_of_the_answer_is_read() -> None:
    item = b'{"UID": "u", "CreationTimeUTC": "2025-01-27T17:05:52Z", "State": "InProgress"}'

    def answer() -> Iterator[bytes]:
        yield b'{"Sessions": [' + b", ".join([item] * 2000)
        raise AssertionError("read past what the first entry needs")

    entries = iter_json(cast(IO[bytes], LazyStream(answer())))
    first = next(entries)
    assert isinstance(first, SessionRecord) and first.running


# --- an answer is read whole or not at all --------------------------------------------------

_GOOD = b'{"UID": "u%d", "CreationTimeUTC": "2025-01-27T17:05:52Z", "State": "Failed"}'


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        (b', {"UID" "bad"}]}', "Expecting ':' delimiter"),
        (b", ", "Expecting value"),  # truncated after a comma
        (b"]", "Expecting ',' delimiter"),  # the object never closed: "]" where "," or "}" is
        (b"]} trailing", "Extra data"),
        (b"]}]", "Extra data"),
        (b'], "sessions": []}', "more than one 'Sessions' member"),
        (b', {"UID": "x", "Deep": ' + b"[" * 5000 + b"]" * 5000 + b"}]}", "deeper than 1000"),
    ],
)
def test_an_error_after_good_entries_fails_the_whole_answer(tail: bytes, why: str) -> None:
    body = b'{"Sessions": [' + b", ".join(_GOOD % i for i in range(300)) + tail
    entries = iter_json(io.BytesIO(body))
    assert all(isinstance(next(entries), SessionRecord) for _ in range(300))
    with pytest.raises(ParseError, match=why):
        list(entries)
    with pytest.raises(ParseError, match=why):
        build(
            iter_json(io.BytesIO(body)),
            taken_at=0.0,
            allows=lambda _: True,
            already_counted=lambda _: False,
        )


def test_every_truncation_is_a_parse_error() -> None:
    body = SPLIT_BODY.rstrip()
    for length in range(len(body)):
        assert streamed([body[:length]]) == "error", length


@pytest.mark.parametrize(
    "body",
    [b"[] []", b"[]]", b"{} x", b'{"Sessions": []} {', b"[]\x00", b'{"Sessions": [],}', b"[1,]"],
)
def test_anything_after_the_answer_or_a_trailing_comma_fails(body: bytes) -> None:
    assert whole(body) == "error"
    with pytest.raises(ParseError, match="malformed JSON"):
        list(iter_json(io.BytesIO(body)))


# --- keys in any case, once or more -----------------------------------------------------------

_ITEM = '"CreationTimeUTC": "2025-01-27T17:05:52Z", "State": "Failed"'


@pytest.mark.parametrize(
    "item",
    [
        # json.loads keeps the last value of a key and its first place; folding then keeps the
        # spelling that came first latest: "b" here, not "c".
        '{"UID": "a", "uid": "b", "UID": "c", ' + _ITEM + "}",
        '{"uid": "a", "UID": "b", ' + _ITEM + ', "Uid": "c", "uid": "d"}',
        '{"UID": "a", "Result": {"Message": "m1", "MESSAGE": "m2", "Message": "m3"}, '
        + _ITEM
        + ', "result": {"message": "n"}, "RESULT": {"Message": "o"}, "result": 5}',
    ],
)
@pytest.mark.parametrize("reader", ["whole", "token_reader"])
def test_duplicate_keys_read_as_json_loads_and_folding_read_them(
    item: str, reader: str, request: pytest.FixtureRequest
) -> None:
    if reader != "whole":
        request.getfixturevalue(reader)
    body = ("[" + item + ", " + item + "]").encode()
    expected = whole(body)
    assert isinstance(expected, list) and len(expected) == 2
    assert streamed([body]) == expected


def test_items_whose_keys_change_read_as_folded_one_by_one() -> None:
    # The key layout learnt from one item must never be used for another.
    items = [
        '{"UID": "a", "CreationTimeUTC": "2025-01-27T17:05:52Z", "State": "Failed"}',
        '{"uid": "b", "creationTimeUTC": "2025-01-27T17:05:52Z", "state": "Failed"}',
        '{"UID": "c", "CreationTimeUTC": "2025-01-27T17:05:52Z"}',
        '{"UID": "d", "CreationTimeUTC": "2025-01-27T17:05:52Z", "State": "Failed", "X": 1}',
        '{"uid": "e", "UID": "f", "CreationTimeUTC": "2025-01-27T17:05:52Z", "State": "Failed"}',
        '{"UID": "f", "uid": "e", "CreationTimeUTC": "2025-01-27T17:05:52Z", "State": "Failed"}',
        '{"UID": "g", "CreationTimeUTC": "2025-01-27T17:05:52Z", "State": "Failed"}',
    ]
    body = ("[" + ", ".join(items + items[::-1]) + "]").encode()
    expected = whole(body)
    assert isinstance(expected, list)
    uids = [e.uid for e in expected if isinstance(e, SessionRecord)]
    assert uids[:7] == ["a", "b", "c", "d", "f", "e", "g"]
    assert streamed([body]) == expected


@pytest.mark.parametrize(
    ("body", "count"),
    [
        (b'{"Sessions": null, "sessions": [' + _GOOD % 1 + b"]}", 1),
        (b'{"Sessions": 5, "Links": [], "SESSIONS": [' + _GOOD % 1 + b"]}", 1),
        (b'{"Href": "x", "sessions": [' + _GOOD % 1 + b', 7], "Type": "List"}', 2),
    ],
)
def test_the_array_is_found_among_other_members(body: bytes, count: int) -> None:
    entries = streamed([body])
    assert entries == whole(body) and len(entries) == count


def test_a_second_sessions_member_after_the_array_fails_the_answer() -> None:
    # json.loads would keep the last one; its entries are already read when it comes, so an
    # answer that names two collections fails instead (no EM sends one).
    body = b'{"Sessions": [' + _GOOD % 1 + b'], "sessions": null}'
    assert whole(body) == []
    with pytest.raises(ParseError, match="more than one 'Sessions' member"):
        list(iter_json(io.BytesIO(body)))


# --- deep, long and big -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"Sessions": [{"UID": "u", "X": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2000 + b"}]}",
        b'{"Links": ' + b"[" * 1001 + b"]" * 1001 + b', "Sessions": []}',
    ],
)
def test_nesting_deeper_than_the_limit_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError, match="nested deeper than 1000 levels"):
        list(iter_json(io.BytesIO(body)))


@pytest.mark.parametrize("reader", ["whole", "token_reader"])
def test_nesting_within_the_limit_reads(reader: str, request: pytest.FixtureRequest) -> None:
    if reader != "whole":
        request.getfixturevalue(reader)
    deep = b"[" * 990 + b"]" * 990
    body = b'{"Sessions": [{"UID": "u", "X": ' + deep + b", " + _ITEM.encode() + b"}]}"
    (entry,) = cast(list[Entry], streamed([body]))
    assert isinstance(entry, SessionRecord) and entry.uid == "u"


def test_the_stand_ins_judge_as_the_whole_strings_would() -> None:
    # A run of blanks kept is longer than any name may be, and what is kept of a string
    # collapses to more than a message keeps, even when every other character is a blank.
    assert max(UID_LIMIT, NAME_LIMIT) < jsonstream.RUN_KEEP
    assert 2 * (jsonstream.TEXT_KEEP // (jsonstream.RUN_KEEP + 1)) > MESSAGE_READ_LIMIT + 1


def _big_item(field: str, value: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "UID": "urn:veeam:SystemSession:1",
        "CreationTimeUTC": "2025-01-27T17:05:52Z",
        "EndTimeUTC": "2025-01-27T17:06:10Z",
        "State": "Failed",
        "Result": {"Result": "Failed", "Message": "m", "IsCanceled": False},
        "Name": "n" * (3 * jsonstream.BIG_VALUE),  # the item goes token by token
    }
    if field.startswith("Result."):
        item["Result"][field.removeprefix("Result.")] = value
    else:
        item[field] = value
    return item


_LONG = 2 * jsonstream.TEXT_KEEP + 10  # past what is kept of a string


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("UID", " " * _LONG + "u" + "\t" * _LONG),  # readable: blanks around never count
        ("UID", "a" + " " * _LONG + "b"),  # too long: blanks inside do
        ("UID", "a" * 257 + " " * _LONG),
        ("SessionType", "\u3000" * _LONG + "CollectJob" + " " * 10),
        ("State", "A" * 101),
        ("CreationTimeUTC", " " * _LONG + "2025-01-27T17:05:52.5Z" + "\n" * _LONG),
        ("CreationTimeUTC", "2025-01-27T17:05:52Z" + "0" * _LONG),
        ("EndTimeUTC", "\n" * _LONG),
        ("Result", " " * _LONG + "Success"),
        ("Result.Result", "Warning" + " " * _LONG),
        ("Result.IsCanceled", " " * _LONG + "true"),
        ("Result.Message", ("x" + " " * 600) * 2000),
        ("Result.Message", " " * _LONG + "RPC\u2028failed\ud800 \U0001f600" * 100_000),
        ("Result.Message", ("w" + " " * 299) * 3000 + "end"),
    ],
)
def test_long_strings_read_token_by_token_judge_as_whole(
    field: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    big: list[int] = []
    tokens = jsonstream._Reader._tokens

    def counted(self: jsonstream._Reader, pos: int, shape: Any) -> tuple[Any, int]:
        big.append(pos)
        return tokens(self, pos, shape)

    monkeypatch.setattr(jsonstream._Reader, "_tokens", counted)
    item = _big_item(field, value)
    for ensure_ascii in (False, True):
        body = json.dumps({"Sessions": [item, item]}, ensure_ascii=ensure_ascii).encode(
            "utf-8", "surrogatepass"
        )
        expected = whole(body)
        assert isinstance(expected, list) and len(expected) == 2
        assert streamed([body]) == expected
    assert big  # the items were read token by token


# --- differential: random answers read as a whole -------------------------------------------

_KEYS = [
    "UID", "uid", "Uid", "SessionType", "sessionType", "State", "state", "CreationTimeUTC",
    "creationTimeUTC", "EndTimeUTC", "endTimeUTC", "Result", "result", "Message", "message",
    "IsCanceled", "isCanceled", "Name", "Links", "Href", "x",
]  # fmt: skip
_TEXTS = [
    "", " ", "Failed", "Success", "CompletedSuccessfully", "InProgress", "None", "true", "1",
    "2025-01-27T17:05:52Z", "2025-01-27T17:05:52.1234567+02:00", "0001-01-01T00:00:00",
    "urn:veeam:SystemSession:1", "a\u00e9\u4e2d\U0001f600b", " \t\n\u3000 x \u2028 ", "\ud800",
    "\udc00x", "\ud83d\ude00", 'RPC  "failed"\r\n \\ badly', "A" * 101, " " * 300 + "z",
]  # fmt: skip


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice(_TEXTS)
    if roll < 0.6:
        return rng.choice([None, True, False, 0, -1, 1.5, 1e300, 12345678901234567890])
    if roll < 0.8:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return _members(rng, depth + 1)


def _members(rng: random.Random, depth: int) -> list[tuple[str, Any]]:
    return [(rng.choice(_KEYS), _value(rng, depth)) for _ in range(rng.randint(0, 6))]


def _dump(value: Any, rng: random.Random, ascii_only: bool) -> str:
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        return "{" + ", ".join(
            json.dumps(k, ensure_ascii=ascii_only) + ":" + _dump(v, rng, ascii_only)
            for k, v in value
        ) + "}"  # fmt: skip
    if isinstance(value, list):
        return "[" + ",".join(_dump(v, rng, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def _answer(rng: random.Random) -> bytes:
    ascii_only = rng.random() < 0.5
    items = []
    for _ in range(rng.randint(0, 5)):
        item: Any = [("UID", f"u{rng.randint(0, 9)}"), ("CreationTimeUTC", _TEXTS[9])]
        item += _members(rng, 1)
        rng.shuffle(item)
        items.append(_dump(item if rng.random() < 0.9 else _value(rng, 2), rng, ascii_only))
    array = "[" + ", ".join(items) + "]"
    if rng.random() < 0.3:
        text = array
    else:
        members = [(rng.choice(["Sessions", "sessions"]), array)]
        for _ in range(rng.randint(0, 2)):
            other = _dump(_value(rng, 1), rng, ascii_only)
            members.insert(rng.randint(0, len(members)), (rng.choice(_KEYS), other))
        text = "{" + ", ".join(json.dumps(k) + ": " + v for k, v in members) + "}"
    body = (" " + text + "\n").encode("utf-8", "surrogatepass")
    roll = rng.random()
    if roll < 0.1:
        body = b"\xef\xbb\xbf" + body
    elif roll < 0.15:
        body = text.encode("utf-16", "surrogatepass")
    roll = rng.random()
    if roll < 0.1:
        body = body[: rng.randrange(len(body))]
    elif roll < 0.2:
        at = rng.randrange(len(body))
        body = body[:at] + bytes([rng.randrange(256)]) + body[at + 1 :]
    return body


@pytest.mark.parametrize("reader", ["tiny_window", "token_reader"])
def test_random_answers_read_as_a_whole(reader: str, request: pytest.FixtureRequest) -> None:
    rng = random.Random(20261202)
    bodies = [_answer(rng) for _ in range(150)]
    expected = [whole(body) for body in bodies]
    assert 20 < sum(e == "error" for e in expected) < 100  # the corpus has both
    request.getfixturevalue(reader)
    for body, outcome in zip(bodies, expected, strict=True):
        assert streamed([body]) == outcome, body
        assert streamed(one_byte_reads(body)) == outcome, body


def test_the_scanner_is_the_c_one() -> None:
    # The pure-Python fallback would read every answer several times slower.
    assert json.scanner.make_scanner is _json.make_scanner
    assert isinstance(jsonstream._scanner(), _json.make_scanner)


# --- memory: one item at a time ---------------------------------------------------------------

_PROBE = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
import test_jsonstream as t
from exporter.parse import ParseError, SessionRecord, iter_json
records = unreadable = longest = 0
try:
    for entry in iter_json(t.LazyStream(getattr(t, sys.argv[2])())):
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

_HEAD = b'{"Sessions": [{"UID": "urn:veeam:SystemSession:outer", "CreationTimeUTC": "2025-01-27T17:05:52Z", "State": "Failed", '


def _sessions(n: int) -> Iterator[bytes]:
    yield b'{"Sessions": ['
    for i in range(n):
        item = {
            "SessionType": "CollectJob",
            "CreationTimeUTC": "2026-11-01T10:00:00.123456Z",
            "EndTimeUTC": "2026-11-01T10:00:31.5Z",
            "State": "Failed",
            "Result": {"Result": "Failed", "Message": "The RPC server is unavailable.", "IsCanceled": False},
            "Name": "Collect Job @2026-11-01 10:00:00.123456",
            "UID": f"urn:veeam:SystemSession:{i:012d}",
            "Links": [],
            "Href": f"https://em/api/systemSessions/{i}?format=Entity",
            "Type": "SystemSession",
        }  # fmt: skip
        yield (b", " if i else b"") + json.dumps(item).encode()
    yield b"]}"


def normal_answer() -> Iterator[bytes]:
    return _sessions(5_000)


def many_sessions() -> Iterator[bytes]:
    """100,000 sessions (45 MB)."""
    return _sessions(100_000)


def huge_message() -> Iterator[bytes]:
    """A failed session whose message is 100 MB."""
    yield _HEAD + b'"Result": {"Result": "Failed", "Message": "'
    for _ in range(1600):
        yield b"The RPC server is unavailable. " * 2114
    yield b'"}}]}'


def huge_escaped_name() -> Iterator[bytes]:
    """A 100 MB Name written as escapes."""
    yield _HEAD + b'"Name": "'
    for _ in range(1600):
        yield b"\\u00e9\\ud83d\\ude00" * 5461
    yield b'"}]}'


def references_list() -> Iterator[bytes]:
    """A Links list of 1,000,000 references in one session (110 MB)."""
    yield _HEAD + b'"Links": ['
    for i in range(1_000_000):
        link = f'{{"Rel": "Alternate", "Href": "https://em/api/systemSessions/{i}", "Name": null}}'
        yield (b", " if i else b"") + link.encode()
    yield b"]}]}"


def huge_key() -> Iterator[bytes]:
    """A 100 MB key before the collection."""
    yield b'{"'
    for _ in range(1600):
        yield b"k" * 65536
    yield b'": 1, "Sessions": [' + _GOOD % 1 + b"]}"


def endless_nesting() -> Iterator[bytes]:
    """100 MB of '[' in a session."""
    yield _HEAD + b'"Links": '
    for _ in range(1600):
        yield b"[" * 65536


def huge_sessions_string() -> Iterator[bytes]:
    """A 100 MB string where the collection should be."""
    yield b'{"Sessions": "'
    for _ in range(1600):
        yield b"s" * 65536
    yield b'"}'


_SHAPES = {
    "many_sessions": "100000 records, 0 unreadable, message 30",
    "huge_message": "1 records, 0 unreadable, message 999",
    "huge_escaped_name": "1 records, 0 unreadable, message 0",
    "references_list": "1 records, 0 unreadable, message 0",
    "huge_key": "1 records, 0 unreadable, message 0",
    "endless_nesting": "ParseError: malformed JSON: nested deeper than 1000 levels",
    "huge_sessions_string": "ParseError: 'Sessions' is not an array",
}


def test_big_and_hostile_answers_stay_within_a_normal_answers_memory() -> None:
    # Each answer's peak RSS in a fresh process, all at once. Decoded whole, 100,000 sessions
    # held 164 MB, a 100 MB message 300 MB.
    here = str(Path(__file__).parent)
    names = ["normal_answer", *_SHAPES]
    probes = {
        name: subprocess.Popen(
            [sys.executable, "-c", _PROBE, here, name], stdout=subprocess.PIPE, text=True
        )
        for name in names
    }
    results: dict[str, tuple[int, str]] = {}
    for name, probe in probes.items():
        out, _ = probe.communicate(timeout=600)
        assert probe.returncode == 0, name
        peak, outcome = json.loads(out)
        results[name] = (peak, outcome)
    normal = results["normal_answer"][0]
    assert results["normal_answer"][1] == "5000 records, 0 unreadable, message 30"
    for name, expected in _SHAPES.items():
        peak, outcome = results[name]
        assert outcome.startswith(expected), (name, outcome)
        assert peak - normal < 8 * 1024, (name, peak, normal)
