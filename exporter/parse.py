"""EM answers (bytes or a byte stream) -> ``SessionRecord`` values.

Pure functions: no network, no metrics, no logging. The rules live here: which sessions are
running, how a result is read from two vocabularies, how dates are read.
XML is parsed as a stream so that a 100,000-session answer is never held as one tree.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Literal

from lxml import etree

from exporter.emformat import HARDENED_XML, fold_keys, strip_bom
from exporter.vocabulary import FINAL_STATES, RESULTS, RUNNING_STATE, UNKNOWN

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
    message: str

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


def parse_timestamp(text: str) -> float | None:
    """Read an EM timestamp as Unix seconds.

    0-7 fractional digits, ``Z``, an offset or no zone (read as UTC). ``None`` means the
    value says "no time": empty, or .NET's ``DateTime.MinValue`` (``0001-01-01...``).
    Anything else that is not a date raises ``ValueError``.
    """
    text = text.strip()
    if not text:
        return None
    m = _DATE.fullmatch(text)
    if m is None:
        raise _NotADate(f"not a timestamp: {text[:40]!r}")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    if year == "0001":
        return None
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise _NotADate(f"not a timestamp: {text[:40]!r}") from exc
    seconds = moment.timestamp()
    if fraction:
        seconds += int(fraction) / 10 ** len(fraction)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        seconds -= sign * offset.total_seconds()
    return seconds


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

    An entry without a UID, without a creation time or with an unreadable date is
    unreadable. A session is running when State is InProgress, or when it has no end time
    (missing, empty or 0001-01-01) while Result/Result says nothing (empty, None,
    InProgress) and State is not a final state; a running session has no end time and no
    result. A finished session's result is Result/Result's, or State's when Result/Result
    says nothing: Success or CompletedSuccessfully is Success, Warning or CompletedWarning
    is Warning, Failed is Failed, any other word is Unknown.
    """
    uid = (uid or "").strip()
    if not uid:
        return UnreadableEntry("no UID")
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

    state = (state or "").strip()
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
        uid=uid,
        # Interned: a few distinct values repeated across tens of thousands of sessions.
        session_type=sys.intern((session_type or "").strip()),
        state=sys.intern(state),
        created=created_at,
        ended=ended_at,
        running=running,
        result="" if running else (outcome or UNKNOWN),
        canceled=is_canceled,
        message=message or "",
    )


# --- XML ------------------------------------------------------------------------------------


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""  # comments and processing instructions
    return tag[tag.rfind("}") + 1 :]


def _xml_entry(elem: Any) -> Entry:
    fields: dict[str, str | None] = {}
    for child in elem:
        name = _local(child.tag)
        if name == "Result":
            if len(child):
                for part in child:
                    fields["Result." + _local(part.tag)] = part.text or ""
            else:
                fields["Result.Result"] = child.text or ""
        elif name:
            fields[name] = child.text or ""
    return make_record(
        uid=elem.get("UID") or fields.get("UID"),
        session_type=fields.get("SessionType"),
        state=fields.get("State"),
        created=fields.get("CreationTimeUTC"),
        ended=fields.get("EndTimeUTC"),
        result=fields.get("Result.Result"),
        message=fields.get("Result.Message"),
        canceled=fields.get("Result.IsCanceled"),
    )


def iter_xml(stream: IO[bytes]) -> Iterator[Entry]:
    """Stream ``SystemSessions/Sessions`` entries out of an XML answer.

    Each entry is read and freed as soon as its end tag arrives, so memory stays flat
    whatever the size of the collection. Entity resolution, DTD loading and network
    access are off: an answer can never make the exporter read a file or a URL.
    """
    context = etree.iterparse(
        stream,
        events=("start", "end"),
        tag="{*}Sessions",
        huge_tree=True,
        **HARDENED_XML,
        remove_comments=True,
        remove_pis=True,
    )
    root_checked = False
    try:
        for event, elem in context:
            parent = elem.getparent()
            if parent is None or parent.getparent() is not None:
                continue  # a Sessions element that is not a collection item
            if not root_checked:
                _check_root(parent)
                root_checked = True
            if event == "end":
                yield _xml_entry(elem)
                elem.clear()
                while elem.getprevious() is not None:
                    del parent[0]
        if not root_checked:
            root = context.root
            if root is None:
                raise ParseError("empty answer")
            _check_root(root)
    except etree.XMLSyntaxError as exc:
        raise ParseError(f"malformed XML: {exc}") from None


def _check_root(root: Any) -> None:
    name = _local(root.tag)
    if name == "SystemSessions":
        return
    if name == "EntityReferences":
        raise ParseError("the EM answered references instead of entities (format=Entity ignored)")
    raise ParseError(f"unexpected root element {name!r}, expected 'SystemSessions'")


# --- JSON -----------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    raise TypeError("not a scalar")


def _json_entry(item: Any) -> Entry:
    if not isinstance(item, Mapping):
        return UnreadableEntry("not an object")
    fields = fold_keys(item)
    try:
        raw_result = fields.get("result")
        if isinstance(raw_result, Mapping):
            res = fold_keys(raw_result)
            result, message = _text(res.get("result")), _text(res.get("message"))
            canceled: str | bool | None = res.get("iscanceled")
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


def iter_json(stream: IO[bytes]) -> Iterator[Entry]:
    """Read the JSON collection: ``{"Sessions": [...]}`` (any key case) or a bare array."""
    body = strip_bom(stream.read())
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"malformed JSON: {exc}") from None
    items: Any
    if isinstance(document, list):
        items = document
    elif isinstance(document, Mapping):
        items = fold_keys(document).get("sessions", ...)
        if items is ...:
            raise ParseError("JSON object without a 'Sessions' array")
        if items is None:
            items = []
    else:
        raise ParseError("JSON answer is neither an object nor an array")
    if not isinstance(items, list):
        raise ParseError("'Sessions' is not an array")
    for item in items:
        yield _json_entry(item)


def iter_entries(stream: IO[bytes], fmt: Literal["xml", "json"]) -> Iterator[Entry]:
    return iter_json(stream) if fmt == "json" else iter_xml(stream)
