"""EM answers (bytes or a byte stream) -> ``SessionRecord`` values.

Pure functions: no network, no metrics, no logging. The rules live here: which sessions are
running, how a result is read from two vocabularies, how dates are read, and what an answer's
text may become. XML is read as a stream of parser events: only the fields of the entry being
read are held, so neither a 100,000-session answer nor a hostile one ever becomes a tree.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import IO, Any, Final, Literal, NamedTuple, TypeVar, cast

from lxml import etree

from exporter.emformat import HARDENED_XML, declares_utf8, fold_keys, repaired_utf8, valid_text
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
# What State says when it leaves a session without an end time running.
_NO_OUTCOME: Final = (None, UNKNOWN)

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
_SCALE: Final[tuple[int, ...]] = tuple(10**digits for digits in range(8))

_WHITESPACE = re.compile(r"\s+")
# Text is cut in slices so that a 100 MB value costs the slices the cut needs, not a copy.
_SLICE = 64 * 1024


class ParseError(Exception):
    """The answer as a whole is not a readable session collection."""


class SessionRecord(NamedTuple):
    """One readable system session, in the exporter's terms.

    A named tuple: immutable, and made several times faster than a frozen dataclass, which
    counts when an answer holds 100,000 of them.
    """

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


# The forms an EM writes, read by position: a day, T or a space, hh:mm:ss, then nothing, Z,
# or 1-7 fractional digits with or without Z. A dict look-up both checks a part (its digits,
# its range, its colon) and reads it, as seconds.
_HOURS_MINUTES: Final = {
    f"{hour:02d}:{minute:02d}": hour * 3600 + minute * 60
    for hour in range(24)
    for minute in range(60)
}
_SECONDS: Final = {f":{second:02d}": second for second in range(60)}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# "YYYY-MM-DD" -> Unix seconds at its midnight, for the ordinary days seen so far.
_DAY_SECONDS: dict[str, int] = {}
_DAY_CACHE: Final = 4096


def parse_timestamp(text: str) -> float | None:
    """Read an EM timestamp as Unix seconds.

    0-7 fractional digits, ``Z``, an offset or no zone (read as UTC). ``None`` means the
    value says "no time": empty, .NET's ``DateTime.MinValue`` (``0001-01-01...``) or SQL
    Server's smallest date (``1753-01-01...``). Anything else that is not a date raises
    ``ValueError``.

    The common forms are read here by position; every other text (an offset, blanks around
    it, "no time", an error) goes to ``general_timestamp``. Where both read a value it is
    the same float: the same sum in the same order.
    """
    if len(text) >= 19 and text[10] in "T ":
        try:
            day: int | None = _DAY_SECONDS[text[:10]]
        except KeyError:
            day = _ordinary_day(text[:10])
        if day is not None:
            try:
                seconds = float(day + _HOURS_MINUTES[text[11:16]] + _SECONDS[text[16:19]])
            except KeyError:  # not hh:mm:ss
                return general_timestamp(text)
            tail = text[19:]
            if not tail or tail == "Z":
                return seconds
            if tail[0] == ".":
                digits = tail[1:-1] if tail[-1] == "Z" else tail[1:]
                count = len(digits)
                if 0 < count <= 7 and digits.isascii() and digits.isdigit():
                    return seconds + int(digits) / _SCALE[count]
    return general_timestamp(text)


def _ordinary_day(key: str) -> int | None:
    """Unix seconds at the midnight of day ``key``, or None when it is no day or a "no
    time" day (those are left to the general reader)."""
    if _DAY.fullmatch(key) is None:
        return None
    year, month, day = key[:4], key[5:7], key[8:]
    if year == _NO_TIME_YEAR or (year, month, day) == _NO_TIME_DAY:
        return None
    try:
        seconds = _epoch_day(year, month, day) * 86400
    except ValueError:  # no such day
        return None
    if len(_DAY_SECONDS) < _DAY_CACHE:
        _DAY_SECONDS[key] = seconds
    return seconds


def general_timestamp(text: str) -> float | None:
    """``parse_timestamp`` by the full grammar: every form, blanks around it, the "no time"
    values, and the errors."""
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
    return _record(uid, session_type, state, created, ended, result, message, canceled)


class _Word(NamedTuple):
    """What a SessionType, State or Result/Result text says, worked out once per text."""

    label: str | None  # stripped, valid and interned; None when longer than NAME_LIMIT
    result: str | None  # the result it says (see _result_of)
    running: bool  # it is the running State


# SessionType, State, Result/Result and IsCanceled texts and messages repeat across the
# sessions of an answer, so what each says is remembered by its raw text. Bounded in count
# and in the length of a text remembered: distinct or long values cost the work, not memory.
_CACHE_SIZE: Final = 1024
_CACHED_LENGTH: Final = 256
_WORDS: dict[str | None, _Word] = {}
_FLAGS: dict[str | bool | None, bool] = {None: False, True: True, False: False}
_MESSAGES: dict[str, str] = {}


def _word(raw: str | None) -> _Word:
    text = (raw or "").strip()
    word = _Word(
        None if len(text) > NAME_LIMIT else sys.intern(valid_text(text)),
        _result_of(text),
        text == RUNNING_STATE,
    )
    if len(_WORDS) < _CACHE_SIZE and (raw is None or len(raw) <= _CACHED_LENGTH):
        _WORDS[raw] = word
    return word


def _flag(raw: str | bool | None) -> bool:
    flag = isinstance(raw, str) and raw.strip().lower() in ("true", "1")
    if len(_FLAGS) < _CACHE_SIZE and isinstance(raw, str) and len(raw) <= _CACHED_LENGTH:
        _FLAGS[raw] = flag
    return flag


def _message(raw: str) -> str:
    message = cut_message(raw)
    if len(_MESSAGES) < _CACHE_SIZE and len(raw) <= 2 * MESSAGE_READ_LIMIT:
        _MESSAGES[raw] = message
    return message


# SessionRecord._make without its length check: the tuple is always whole.
_new_record: Final = tuple.__new__
_NO_UID: Final = UnreadableEntry("no UID")
_LONG_UID: Final = UnreadableEntry(f"UID longer than {UID_LIMIT} characters")
_LONG_TYPE: Final = UnreadableEntry(f"SessionType longer than {NAME_LIMIT} characters")
_LONG_STATE: Final = UnreadableEntry(f"State longer than {NAME_LIMIT} characters")
_BAD_CREATED: Final = UnreadableEntry("unreadable CreationTimeUTC")
_NO_CREATED: Final = UnreadableEntry("no CreationTimeUTC")
_BAD_ENDED: Final = UnreadableEntry("unreadable EndTimeUTC")


def _record(
    uid: str | None,
    session_type: str | None,
    state: str | None,
    created: str | None,
    ended: str | None,
    result: str | None,
    message: str | None,
    canceled: str | bool | None,
) -> Entry:
    """``make_record`` with positional arguments, for the readers' loops."""
    uid = (uid or "").strip()
    if not uid:
        return _NO_UID
    if len(uid) > UID_LIMIT:
        return _LONG_UID
    try:
        kind = _WORDS[session_type]
    except KeyError:
        kind = _word(session_type)
    if kind.label is None:
        return _LONG_TYPE
    try:
        status = _WORDS[state]
    except KeyError:
        status = _word(state)
    if status.label is None:
        return _LONG_STATE
    try:
        created_at = parse_timestamp(created or "")
    except ValueError:
        return _BAD_CREATED
    if created_at is None:
        return _NO_CREATED
    try:
        ended_at = parse_timestamp(ended or "")
    except ValueError:
        return _BAD_ENDED

    try:
        told = _WORDS[result].result
    except KeyError:
        told = _word(result).result
    by_state = status.result
    # No end time and no outcome in Result/Result: still running, unless State itself is
    # one of the final states (then it finished without an end time).
    running = status.running or (ended_at is None and told is None and by_state in _NO_OUTCOME)
    if running:
        ended_at = None
    try:
        flag = _FLAGS[canceled]
    except KeyError:
        flag = _flag(canceled)
    text = ""
    if message:
        try:
            text = _MESSAGES[message]
        except KeyError:
            text = _message(message)
    return _new_record(
        SessionRecord,
        (
            uid if uid.isascii() else valid_text(uid),
            kind.label,
            status.label,
            created_at,
            ended_at,
            running,
            "" if running else (told or by_state or UNKNOWN),
            flag,
            text,
        ),
    )


# --- XML ------------------------------------------------------------------------------------

# Element names, lower-cased local names: they match whatever their case, like JSON keys.
_ROOT = "systemsessions"
_ITEM = "sessions"
_REFERENCES_ROOT = "entityreferences"
# Where an item's field texts are kept while it is read: one list per item, by position.
(
    _UID_ATTRIBUTE,
    _UID,
    _SESSION_TYPE,
    _STATE,
    _CREATED,
    _ENDED,
    _RESULT_TEXT,  # Result's own text: Result/Result when Result has no parts
    _RESULT_RESULT,
    _MESSAGE,
    _CANCELED,
    _HAS_PARTS,
    _SLOTS,
) = range(12)
_NO_SLOT: Final = -1  # an element whose text is not read
# Children of a collection item that are read, and Result's parts, to their slot.
_FIELD_SLOTS: Final = {
    "uid": _UID,
    "sessiontype": _SESSION_TYPE,
    "state": _STATE,
    "creationtimeutc": _CREATED,
    "endtimeutc": _ENDED,
    "result": _RESULT_TEXT,
}
_PART_SLOTS: Final = {"result": _RESULT_RESULT, "message": _MESSAGE, "iscanceled": _CANCELED}
# The depths (root = 1) of a collection item, of its fields and of Result's parts.
_ITEM_DEPTH, _FIELD_DEPTH, _PART_DEPTH = 2, 3, 4

# Captured text is compacted, between two reads of the stream, once this long: every field
# keeps what its verdict needs.
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
    """The parser's target: turns element and text events into entries, handed to ``emit``
    as each item ends.

    Holds the fields of the entry being read and nothing else: every other element, a
    Sessions element nested deeper, a long references list, unknown children, attributes,
    is dropped as its event passes. Only the text before an element's first child counts.

    The handlers run once per element of the answer, so their state lives in the cells of
    one closure (a cell is read and written faster than an attribute) and each does as
    little as it can. Text costs no Python call at all: lxml appends each piece to a list,
    which a field's start empties and its end (or first child) joins. Between two reads of
    the stream, ``progress`` compacts what a captured field holds and drops any other text,
    so neither grows past one read's worth, however long a text is.
    """

    __slots__ = ("data", "end", "progress", "root_seen", "start")

    def __init__(self, emit: Callable[[Entry], object]) -> None:
        depth = 0
        # Set by an element start: with text that arrived, what tells the parse has moved
        # (see STALL_LIMIT).
        moved = False
        root_seen = False
        item: list[str | None] | None = None  # the collection item being read
        in_result = False  # inside the item's Result element
        slot = _NO_SLOT  # the slot whose text is being captured ...
        pieces: list[str] = []  # ... and its text so far (or other text, to be dropped)
        settled = 0  # pieces left by the last compaction
        # Element name (as lxml gives it, with its namespace) -> what it is, per answer.
        field_slots: dict[str, int] = {}
        part_slots: dict[str, int] = {}
        items: dict[str, bool] = {}

        def start(tag: str, attrib: Mapping[str, str]) -> None:
            nonlocal depth, moved, root_seen, item, in_result, slot
            moved = True
            depth += 1
            if depth == _FIELD_DEPTH:
                # Nothing is being captured: captures are at this depth and the next, and
                # end with their element or its first child.
                if item is not None:
                    try:
                        found = field_slots[tag]
                    except KeyError:
                        found = _learn(field_slots, tag, _FIELD_SLOTS, _NO_SLOT)
                    if found != _NO_SLOT:
                        slot = found
                        pieces.clear()
                    in_result = found == _RESULT_TEXT
                return
            if slot != _NO_SLOT:  # a child ends the text that counts
                item[slot] = "".join(pieces)  # type: ignore[index]
                slot = _NO_SLOT
            if depth == _PART_DEPTH:
                if in_result:
                    item[_HAS_PARTS] = ""  # type: ignore[index]
                    try:
                        found = part_slots[tag]
                    except KeyError:
                        found = _learn(part_slots, tag, _PART_SLOTS, _NO_SLOT)
                    if found != _NO_SLOT:
                        slot = found
                        pieces.clear()
            elif depth == _ITEM_DEPTH:
                is_item = items.get(tag)
                if is_item is None:
                    is_item = _learn(items, tag, {_ITEM: True}, False)
                if is_item:
                    item = [None] * _SLOTS
                    uid = attrib.get("UID")
                    if uid is None:
                        uid = next((v for k, v in attrib.items() if k.lower() == "uid"), None)
                    item[_UID_ATTRIBUTE] = uid
                    in_result = False
            elif depth == 1:
                root_seen = True
                _check_root(tag)

        def end(tag: str) -> None:
            nonlocal depth, item, slot
            if slot != _NO_SLOT:  # still capturing: this is the field's own end
                item[slot] = "".join(pieces)  # type: ignore[index]
                slot = _NO_SLOT
            elif depth == _ITEM_DEPTH and item is not None:
                emit(
                    _record(
                        item[_UID_ATTRIBUTE] or item[_UID],
                        item[_SESSION_TYPE],
                        item[_STATE],
                        item[_CREATED],
                        item[_ENDED],
                        item[_RESULT_TEXT if item[_HAS_PARTS] is None else _RESULT_RESULT],
                        item[_MESSAGE],
                        item[_CANCELED],
                    )
                )
                item = None
            depth -= 1

        def progress() -> bool:
            """Whether an element started or text arrived since the last call; then keeps
            of the text only what a field being captured needs."""
            nonlocal moved, slot, settled
            was = moved or len(pieces) > settled
            moved = False
            if slot == _NO_SLOT:
                pieces.clear()
            elif len(pieces) > 1:
                text = "".join(pieces)
                pieces.clear()
                full = False
                if len(text) > _COMPACT_AT:
                    text, full = (_message_prefix if slot == _MESSAGE else _field_prefix)(text)
                if full:  # nothing that follows can change the field
                    item[slot] = text  # type: ignore[index]
                    slot = _NO_SLOT
                else:
                    pieces.append(text)
            settled = len(pieces)
            return was

        self.start = start
        self.end = end
        self.data: Callable[[str], None] = pieces.append
        self.progress = progress
        self.root_seen: Callable[[], bool] = lambda: root_seen

    @staticmethod
    def doctype(*_: object) -> None:
        # The EM never sends one; refusing it is what keeps entities from ever expanding.
        raise ParseError("the answer declares a DTD (<!DOCTYPE>), which is refused")

    @staticmethod
    def close() -> None:
        return None


_T = TypeVar("_T")


def _learn(known: dict[str, _T], tag: str, by_name: Mapping[str, _T], default: _T) -> _T:
    """What an element name stands for, remembered for the rest of the answer (a bounded
    number of names: an answer of endless distinct names is looked up each time)."""
    value = by_name.get(_local(tag), default)
    if len(known) < _NAME_CACHE:
        known[tag] = value
    return value


def _local(tag: str) -> str:
    return tag[tag.rfind("}") + 1 :].lower()


def _check_root(tag: str) -> None:
    name = _local(tag)
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


def stream_xml(
    stream: IO[bytes],
    target: object,
    found: list[_T],
    progress: Callable[[], bool],
) -> Iterator[_T]:
    """Feed an XML answer to the parser ``target`` in reads of 64 KiB, yielding what it has
    appended to ``found`` after each read (the list is emptied as it is yielded).

    The one hardened way every EM answer in XML is read: entities never expanded, no DTD or
    network access, comments and processing instructions dropped, undecodable bytes of a UTF-8
    answer replaced by U+FFFD, and an answer refused once ``STALL_LIMIT`` bytes have gone by
    without ``progress()`` (an element or text since its last call), which is a single tag,
    attribute or comment grown too big. A syntax error is a :class:`ParseError`. Checking the
    root element and what the answer held is the caller's: this only reads.
    """
    parser = etree.XMLParser(
        # lxml's stubs want str-or-bytes handlers and a comment() one; lxml hands a target
        # str, and comments are removed before they reach it.
        target=cast("etree.ParserTarget", target),
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
    if declares_utf8(first):
        chunks = repaired_utf8(chunks)
    stalled = 0
    try:
        for chunk in chunks:
            parser.feed(chunk)
            if found:
                yield from found
                found.clear()
            if progress():
                stalled = 0
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
    yield from found
    found.clear()


def iter_xml(stream: IO[bytes]) -> Iterator[Entry]:
    """Stream ``SystemSessions/Sessions`` entries out of an XML answer.

    Each entry is yielded once its end tag has been read, and nothing else is held, so
    memory stays flat whatever the size or shape of the answer. A wrong root element fails
    as soon as its start tag is read. A UTF-8 answer has undecodable bytes replaced by
    U+FFFD. Entities are never expanded (an answer with a DTD is refused), DTDs and the
    network are never loaded: an answer can never make the exporter read a file or a URL.
    """
    entries: list[Entry] = []
    reader = _SessionReader(entries.append)
    yield from stream_xml(stream, reader, entries, reader.progress)
    if not reader.root_seen():
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
