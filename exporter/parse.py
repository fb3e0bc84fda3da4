"""EM answers (bytes or a byte stream) -> ``SessionRecord`` values.

Pure functions: no network, no metrics, no logging. The rules live here: which sessions are
running, how a result is read from two vocabularies, how dates are read, and what an answer's
text may become. XML is read as a stream of parser events: only the fields of the entry being
read are held, so neither a 100,000-session answer nor a hostile one ever becomes a tree.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import IO, Any, Final, Literal, cast

from lxml import etree

from exporter.emformat import HARDENED_XML, fold_keys, repaired_utf8, valid_text
from exporter.jsonstream import SCALAR, JSONError, Shape, iter_collection
from exporter.vocabulary import FINAL_STATES, RESULTS, RUNNING_STATE, UNKNOWN

# Longest SessionType or State, and longest UID, that an entry may have. Session types and
# states become label values and UIDs are remembered for a month: anything longer is not an
# EM's word, and the entry is unreadable rather than a series or a memory hog.
NAME_LIMIT: Final = 100
UID_LIMIT: Final = 256
# How much of a failure message is kept when it is read: bounded, so a 100 MB message costs
# nothing, yet well above the 200 code points of the failure-info label, because the label is
# cut only after redaction: a secret the EM echoes at the label's edge is removed whole, never
# shown in part.
MESSAGE_READ_LIMIT: Final = 1000

# An EM word, lower-cased, to its result: a result word or a final State both say one, in
# Result/Result and (when that says nothing) in State.
_RESULT_WORDS = {word.lower(): word for word in RESULTS} | {
    state.lower(): result for state, result in FINAL_STATES.items()
}
# Values of Result/Result that carry no outcome: the session may still be running.
_SILENT_WORDS = frozenset({"", "none", RUNNING_STATE.lower()})

_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?"
    r"(Z|[+-]\d{2}:?\d{2})?",
    re.ASCII,
)
# Dates that say "no time": .NET's DateTime.MinValue (any time in year 1) and SQL Server's
# smallest datetime.
_NO_TIME_YEAR = "0001"
_NO_TIME_DAY = ("1753", "01", "01")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_SCALE = tuple(10**digits for digits in range(8))

_WHITESPACE = re.compile(r"\s+")
# Text is cut in slices so that a 100 MB value costs the slices the cut needs, not a copy.
_SLICE = 64 * 1024


class ParseError(Exception):
    """The answer as a whole is not a readable session collection."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One readable system session, in the exporter's terms."""

    uid: str
    session_type: str
    state: str
    created: float  # Unix seconds
    ended: float | None  # None while running, or when a finished session has no end time
    running: bool
    result: str  # Success, Warning, Failed or Unknown; "" while running
    canceled: bool
    message: str  # whitespace collapsed, at most MESSAGE_READ_LIMIT code points

    @property
    def duration(self) -> float | None:
        if self.ended is None:
            return None
        return max(0.0, self.ended - self.created)


@dataclass(frozen=True, slots=True)
class UnreadableEntry:
    """An entry that could not be read; counted and skipped, it never fails the poll."""

    why: str


Entry = SessionRecord | UnreadableEntry


class _NotADate(ValueError):
    pass


@lru_cache(maxsize=1024)
def _epoch_day(year: str, month: str, day: str) -> int:
    # A 30-day window has few distinct days; the cache makes each one cost a look-up.
    return date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL


def parse_timestamp(text: str) -> float | None:
    """Read an EM timestamp as Unix seconds.

    0-7 fractional digits, ``Z``, an offset or no zone (read as UTC). ``None`` means the
    value says "no time": empty, .NET's ``DateTime.MinValue`` (``0001-01-01...``) or SQL
    Server's smallest date (``1753-01-01...``). Anything else that is not a date raises
    ``ValueError``.
    """
    text = text.strip()
    if not text:
        return None
    m = _DATE.fullmatch(text)
    if m is None:
        raise _NotADate(f"not a timestamp: {text[:40]!r}")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    if year == _NO_TIME_YEAR or (year, month, day) == _NO_TIME_DAY:
        return None
    h, mi, s = int(hour), int(minute), int(second)
    try:
        days: int | None = _epoch_day(year, month, day)
    except ValueError:  # no such day
        days = None
    if days is None or h > 23 or mi > 59 or s > 59:
        raise _NotADate(f"not a timestamp: {text[:40]!r}")
    seconds = float(days * 86400 + h * 3600 + mi * 60 + s)
    if fraction:
        seconds += int(fraction) / _SCALE[len(fraction)]
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds


def _message_prefix(text: str) -> tuple[str, bool]:
    """Whitespace collapsed and left-stripped, at most MESSAGE_READ_LIMIT + 2 code points; True
    once cut, when nothing that follows can change the message any more."""
    text = _WHITESPACE.sub(" ", text).lstrip()
    if len(text) > MESSAGE_READ_LIMIT + 1:
        return text[: MESSAGE_READ_LIMIT + 2], True
    return text, False


def cut_message(message: str) -> str:
    """A failure message as it is kept: valid text, whitespace collapsed to single spaces,
    stripped, cut to MESSAGE_READ_LIMIT code points. Idempotent."""
    if len(message) <= _SLICE:
        # str.split() splits on the whitespace that \s matches, and drops both ends.
        kept = " ".join(message.split())
    else:
        kept = ""
        for start in range(0, len(message), _SLICE):
            kept, full = _message_prefix(kept + message[start : start + _SLICE])
            if full:
                break
        kept = kept.rstrip()
    return valid_text(kept[:MESSAGE_READ_LIMIT].rstrip())


def _result_of(word: str) -> str | None:
    """The exporter's result for an EM word, or None when the word says nothing."""
    key = word.strip().lower()
    if key in _SILENT_WORDS:
        return None
    return _RESULT_WORDS.get(key, UNKNOWN)


def make_record(
    *,
    uid: str | None,
    session_type: str | None,
    state: str | None,
    created: str | None,
    ended: str | None,
    result: str | None,
    message: str | None,
    canceled: str | bool | None,
) -> Entry:
    """Read one entry from its raw field values (None = absent or null).

    An entry without a UID, without a creation time, with an unreadable date, or with a
    UID, SessionType or State longer than its limit (after stripping) is unreadable. A
    session is running when State is InProgress, or when it has no end time (missing, empty,
    0001-01-01 or 1753-01-01) while Result/Result says nothing (empty, None, InProgress) and
    State is not a final state; a running session has no end time and no result. A finished
    session's result is Result/Result's, or State's when Result/Result says nothing: Success
    or CompletedSuccessfully is Success, Warning or CompletedWarning is Warning, Failed is
    Failed, any other word is Unknown. Text that can reach a label (SessionType, State, the
    message) has each lone surrogate replaced by U+FFFD; the message is cut by
    ``cut_message``.
    """
    uid = (uid or "").strip()
    if not uid:
        return UnreadableEntry("no UID")
    if len(uid) > UID_LIMIT:
        return UnreadableEntry(f"UID longer than {UID_LIMIT} characters")
    session_type = (session_type or "").strip()
    if len(session_type) > NAME_LIMIT:
        return UnreadableEntry(f"SessionType longer than {NAME_LIMIT} characters")
    state = (state or "").strip()
    if len(state) > NAME_LIMIT:
        return UnreadableEntry(f"State longer than {NAME_LIMIT} characters")
    try:
        created_at = parse_timestamp(created or "")
    except ValueError:
        return UnreadableEntry("unreadable CreationTimeUTC")
    if created_at is None:
        return UnreadableEntry("no CreationTimeUTC")
    try:
        ended_at = parse_timestamp(ended or "")
    except ValueError:
        return UnreadableEntry("unreadable EndTimeUTC")

    told = _result_of(result or "")
    by_state = _result_of(state)
    outcome = told if told is not None else by_state
    # No end time and no outcome in Result/Result: still running, unless State itself is
    # one of the final states (then it finished without an end time).
    running = state == RUNNING_STATE or (
        ended_at is None and told is None and by_state in (None, UNKNOWN)
    )
    if running:
        ended_at = None

    if isinstance(canceled, bool):
        is_canceled = canceled
    else:
        is_canceled = (canceled or "").strip().lower() in ("true", "1")

    return SessionRecord(
        uid=valid_text(uid),
        # Interned: a few distinct values repeated across tens of thousands of sessions.
        session_type=sys.intern(valid_text(session_type)),
        state=sys.intern(valid_text(state)),
        created=created_at,
        ended=ended_at,
        running=running,
        result="" if running else (outcome or UNKNOWN),
        canceled=is_canceled,
        message=cut_message(message) if message else "",
    )


# --- XML ------------------------------------------------------------------------------------

# Element names, lower-cased local names: they match whatever their case, like JSON keys.
_ROOT = "systemsessions"
_ITEM = "sessions"
_REFERENCES_ROOT = "entityreferences"
_RESULT = "result"
# Children of a collection item that are read, and Result's parts, to the key of their text.
_FIELD_KEYS = {
    "uid": "uid",
    "sessiontype": "sessiontype",
    "state": "state",
    "creationtimeutc": "creationtimeutc",
    "endtimeutc": "endtimeutc",
    _RESULT: "result.text",  # Result/Result when Result has no parts
}
_PART_KEYS = {
    "result": "result.result",
    "message": "result.message",
    "iscanceled": "result.iscanceled",
}
_HAS_PARTS = "result.parts"
_MESSAGE_KEY = "result.message"
_UID_ATTRIBUTE = "uid@"
# The depths (root = 1) of a collection item, of its fields and of Result's parts.
_ITEM_DEPTH, _FIELD_DEPTH, _PART_DEPTH = 2, 3, 4

# Captured text is compacted once this long: every field keeps what its verdict needs. Small,
# because text made of character references arrives one character per event.
_COMPACT_AT = 1024
# Past this, a field's stripped text is kept only as "too long" (every limit is below it).
_FIELD_CAP = 256
_READ_SIZE = 64 * 1024
# libxml2 holds a whole tag (with its attributes), comment or processing instruction until
# it ends; text it hands over as it arrives. This much input without a single element or
# text event is one such token that has grown too big, and the answer is refused.
STALL_LIMIT: Final = 1024 * 1024
# Distinct element names remembered per answer; more are looked up each time.
_NAME_CACHE = 256

_PROLOG_SIZE = 1024
_ENCODING_DECLARATION = re.compile(rb"<\?xml[^>]*?\sencoding\s*=\s*[\"']([A-Za-z0-9._-]+)")


def _field_prefix(text: str) -> tuple[str, bool]:
    """What a non-message field keeps of its text so far: exact while its stripped text is
    within _FIELD_CAP, else a stand-in as long as the cap plus one; True once too long."""
    text = text.lstrip()
    content = text.rstrip()
    if len(content) > _FIELD_CAP:
        return content[:_FIELD_CAP] + content[-1], True
    # Trailing whitespace beyond the cap can only matter to say "too long", which any
    # further text then says anyway.
    return text[: _FIELD_CAP + 1], False


class _SessionReader:
    """The parser's target: turns element and text events into entries.

    Holds the fields of the entry being read and nothing else: every other element, a
    Sessions element nested deeper, a long references list, unknown children, attributes,
    is dropped as its event passes. Only the text before an element's first child counts.
    """

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.events = 0  # element starts and text chunks seen, to tell a stalled parse
        self.root_seen = False
        self._depth = 0
        self._names: dict[str, str] = {}
        self._fields: dict[str, str] | None = None  # the collection item being read
        self._in_result = False  # inside the item's Result element
        self._key = ""  # the field whose text is being captured ...
        self._text: str | None = None  # ... and its text so far (None: no capture)

    def _name(self, tag: str) -> str:
        name = tag[tag.rfind("}") + 1 :].lower()
        if len(self._names) < _NAME_CACHE:
            self._names[tag] = name
        return name

    def doctype(self, *_: object) -> None:
        # The EM never sends one; refusing it is what keeps entities from ever expanding.
        raise ParseError("the answer declares a DTD (<!DOCTYPE>), which is refused")

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        self.events += 1
        depth = self._depth = self._depth + 1
        fields = self._fields
        if fields is None:
            if depth == _ITEM_DEPTH:
                if (self._names.get(tag) or self._name(tag)) == _ITEM:
                    uid = attrib.get("UID")
                    if uid is None:
                        uid = next((v for k, v in attrib.items() if k.lower() == "uid"), None)
                    self._fields = {} if uid is None else {_UID_ATTRIBUTE: uid}
            elif depth == 1:
                self.root_seen = True
                _check_root(tag, self._names.get(tag) or self._name(tag))
            return
        if self._text is not None:  # a child ends the text that counts
            fields[self._key] = self._text
            self._text = None
        key: str | None
        if depth == _FIELD_DEPTH:
            name = self._names.get(tag) or self._name(tag)
            self._in_result = name == _RESULT
            key = _FIELD_KEYS.get(name)
        elif depth == _PART_DEPTH and self._in_result:
            fields[_HAS_PARTS] = ""
            key = _PART_KEYS.get(self._names.get(tag) or self._name(tag))
        else:
            return
        if key is not None:
            self._key = key
            self._text = ""

    def end(self, tag: str) -> None:
        depth = self._depth
        self._depth = depth - 1
        if self._text is not None:  # still capturing: this is the field's own end
            self._fields[self._key] = self._text  # type: ignore[index]
            self._text = None
        elif depth == _ITEM_DEPTH and self._fields is not None:
            self.entries.append(_xml_entry(self._fields))
            self._fields = None

    def data(self, text: str) -> None:
        self.events += 1
        if self._text is not None:
            text = self._text = self._text + text
            if len(text) > _COMPACT_AT:
                self._compact(text)

    def _compact(self, text: str) -> None:
        kept, full = (_message_prefix if self._key == _MESSAGE_KEY else _field_prefix)(text)
        if full:  # nothing that follows can change the field
            self._fields[self._key] = kept  # type: ignore[index]
            self._text = None
        else:
            self._text = kept

    def close(self) -> None:
        return None


def _xml_entry(fields: Mapping[str, str]) -> Entry:
    return make_record(
        uid=fields.get(_UID_ATTRIBUTE) or fields.get("uid"),
        session_type=fields.get("sessiontype"),
        state=fields.get("state"),
        created=fields.get("creationtimeutc"),
        ended=fields.get("endtimeutc"),
        result=fields.get("result.result" if _HAS_PARTS in fields else "result.text"),
        message=fields.get("result.message"),
        canceled=fields.get("result.iscanceled"),
    )


def _check_root(tag: str, name: str) -> None:
    if name == _ROOT:
        return
    if name == _REFERENCES_ROOT:
        raise ParseError("the EM answered references instead of entities (format=Entity ignored)")
    local = tag[tag.rfind("}") + 1 :][:40]
    raise ParseError(f"unexpected root element {local!r}, expected 'SystemSessions'")


def _read_chunks(stream: IO[bytes], first: bytes) -> Iterator[bytes]:
    yield first
    while chunk := stream.read(_READ_SIZE):
        yield chunk


def _is_utf8(prefix: bytes) -> bool:
    """Whether the answer is UTF-8, from its first bytes: no UTF-16/32 byte-order mark or
    zero bytes, and an XML declaration, if any, that names UTF-8."""
    if prefix[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in prefix[:4]:
        return False
    declared = _ENCODING_DECLARATION.match(prefix.removeprefix(b"\xef\xbb\xbf"))
    return declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")


def iter_xml(stream: IO[bytes]) -> Iterator[Entry]:
    """Stream ``SystemSessions/Sessions`` entries out of an XML answer.

    Each entry is yielded once its end tag has been read, and nothing else is held, so
    memory stays flat whatever the size or shape of the answer. A wrong root element fails
    as soon as its start tag is read. A UTF-8 answer has undecodable bytes replaced by
    U+FFFD. Entities are never expanded (an answer with a DTD is refused), DTDs and the
    network are never loaded: an answer can never make the exporter read a file or a URL.
    """
    reader = _SessionReader()
    parser = etree.XMLParser(
        # lxml's stubs want str-or-bytes handlers and a comment() one; lxml hands this
        # target str, and comments are removed before they reach it.
        target=cast("etree.ParserTarget", reader),
        **HARDENED_XML,
        remove_comments=True,
        remove_pis=True,
    )
    first = stream.read(_READ_SIZE)
    if not first:
        raise ParseError("empty answer")
    # The encoding declaration, if any, ends at the first '>'; a short first read may stop
    # before it.
    while b">" not in first and len(first) < _PROLOG_SIZE:
        more = stream.read(_READ_SIZE)
        if not more:
            break
        first += more
    chunks = _read_chunks(stream, first)
    if _is_utf8(first):
        chunks = repaired_utf8(chunks)
    stalled = 0
    events = reader.events
    try:
        for chunk in chunks:
            parser.feed(chunk)
            if reader.entries:
                yield from reader.entries
                reader.entries.clear()
            if reader.events != events:
                events, stalled = reader.events, 0
            else:
                stalled += len(chunk)
                if stalled > STALL_LIMIT:
                    raise ParseError(
                        f"a single XML tag, attribute or comment longer than "
                        f"{STALL_LIMIT // 1024 // 1024} MiB"
                    )
        parser.close()
    except etree.XMLSyntaxError as exc:
        raise ParseError(f"malformed XML: {exc}") from None
    yield from reader.entries
    if not reader.root_seen:
        raise ParseError("empty answer")


# --- JSON -----------------------------------------------------------------------------------

# What an item's reading needs of it, lower-cased: anything else is never kept of an item too
# big to be decoded whole.
_JSON_ITEM: Final[Shape] = {
    "uid": SCALAR,
    "sessiontype": SCALAR,
    "state": SCALAR,
    "creationtimeutc": SCALAR,
    "endtimeutc": SCALAR,
    "result": {"result": SCALAR, "message": SCALAR, "iscanceled": SCALAR},
}
_ITEM_FIELDS: Final = tuple(_JSON_ITEM)
_RESULT_FIELDS: Final = tuple(_JSON_ITEM["result"])


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    raise TypeError("not a scalar")


class _Layout:
    """Which key of an object holds each field, learnt from one object and reused for the
    next ones with the same keys: the items of one answer share their keys and their case, so
    this replaces lower-casing every key of every item. Keys that differ only in case make
    the answer of fold_keys depend on their order, and such an object is not learnt."""

    __slots__ = ("_fields", "_keys", "_names")

    def __init__(self, fields: tuple[str, ...]) -> None:
        self._fields = fields
        self._keys: frozenset[str] = frozenset()
        self._names: tuple[str | None, ...] = (None,) * len(fields)

    def values(self, obj: dict[str, Any]) -> tuple[Any, ...]:
        """The fields' values (None when absent), as fold_keys(obj) would give them."""
        if obj.keys() != self._keys:
            folded = {key.lower(): key for key in obj}
            if len(folded) != len(obj):
                got = fold_keys(obj)
                return tuple(got.get(field) for field in self._fields)
            self._keys = frozenset(obj)
            self._names = tuple(folded.get(field) for field in self._fields)
        return tuple(obj.get(name) for name in self._names)  # type: ignore[arg-type]


class _JsonEntries:
    """Reads the items of one answer."""

    __slots__ = ("_item", "_result")

    def __init__(self) -> None:
        self._item = _Layout(_ITEM_FIELDS)
        self._result = _Layout(_RESULT_FIELDS)

    def entry(self, item: Any) -> Entry:
        if not isinstance(item, dict):
            return UnreadableEntry("not an object")
        uid, session_type, state, created, ended, raw_result = self._item.values(item)
        try:
            if isinstance(raw_result, dict):
                result, message, canceled = self._result.values(raw_result)
                result, message = _text(result), _text(message)
            else:
                result, message, canceled = _text(raw_result), None, None
            if canceled is not None and not isinstance(canceled, bool):
                canceled = _text(canceled)
            return make_record(
                uid=_text(uid),
                session_type=_text(session_type),
                state=_text(state),
                created=_text(created),
                ended=_text(ended),
                result=result,
                message=message,
                canceled=canceled,
            )
        except TypeError:
            return UnreadableEntry("a field has the wrong JSON type")


def iter_json(stream: IO[bytes]) -> Iterator[Entry]:
    """Stream the entries of a JSON collection: ``{"Sessions": [...]}`` (any key case, among
    other keys) or a bare array.

    Each item is read as soon as it has arrived and nothing else is held, so memory stays flat
    whatever the size of the answer. An answer that is not JSON fails on its first read; one
    that turns out not to be JSON, or not a collection, fails when that is read, even after
    entries were yielded (the caller discards them with the poll). Undecodable bytes become
    U+FFFD, as do lone surrogates in the text that can reach a label.
    """
    entries = _JsonEntries()
    try:
        for item in iter_collection(stream, "Sessions", _JSON_ITEM):
            yield entries.entry(item)
    except JSONError as exc:
        raise ParseError(str(exc)) from None


def iter_entries(stream: IO[bytes], fmt: Literal["xml", "json"]) -> Iterator[Entry]:
    return iter_json(stream) if fmt == "json" else iter_xml(stream)
