"""Job-session answers (a ``QueryResult`` page, or one ``BackupJobSession``) -> records. Pure.

Both formats are read as a stream: XML through parser events, JSON one entry at a time, so only
the entry being read is held, never the answer. Element names and JSON keys match whatever their
case (v12 PascalCase, v13 camelCase). What may become a label (job name, job type, backup
server) is bounded in length; an entry that cannot be read is counted and skipped; only an
answer that is not a readable collection fails the poll (ParseError).

Reading a session:

- finished: ``State`` is ``Stopped``, in any case; any other state is still running;
- result of a finished session: ``Success``, ``Warning`` or ``Failed`` (any case), anything else
  ``Unknown``; a running session has none;
- ``backup_server``: the ``Name`` of the link of type ``BackupServerReference``, else the GUID at
  the end of its ``Href``;
- ``job_name``: ``JobName``, else the ``Name`` of the link of type ``JobReference``.
"""

from __future__ import annotations

import codecs
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Final, Literal

from exporter.emformat import fold_keys, valid_text
from exporter.jobsessions.plan import Paging
from exporter.parse import (
    NAME_LIMIT,
    UID_LIMIT,
    ParseError,
    UnreadableEntry,
    parse_timestamp,
    stream_xml,
)
from exporter.vocabulary import FAILED, SUCCESS, UNKNOWN, WARNING

# Job names hold the copy job, the source job and the machine (`Copy\Source - host`): longer
# than a type's name, still bounded, as each one is a label value kept for a month.
JOB_NAME_LIMIT: Final = 512
SERVER_NAME_LIMIT: Final = 256
# One JSON value (an entry, or anything skipped) may be at most this long: a session is a few
# KiB, its restore-point links a few hundred bytes each.
JSON_VALUE_LIMIT: Final = 8 * 1024 * 1024
_READ_SIZE: Final = 64 * 1024

STOPPED: Final = "stopped"
_RESULTS: Final = {word.lower(): word for word in (SUCCESS, WARNING, FAILED)}
_SERVER_LINK: Final = "backupserverreference"
_JOB_LINK: Final = "jobreference"


@dataclass(frozen=True, slots=True)
class JobSessionRecord:
    """One readable backup job session, in the exporter's terms."""

    uid: str  # lower-cased: the dedup key
    job_name: str
    job_type: str
    backup_server: str
    created: float  # Unix seconds
    ended: float | None
    finished: bool
    result: str  # Success, Warning, Failed or Unknown; "" while running
    retry: bool
    progress: float | None  # 0-100, None when absent or unreadable

    @property
    def duration(self) -> float | None:
        if not self.finished or self.ended is None:
            return None
        return max(0.0, self.ended - self.created)

    @property
    def job(self) -> tuple[str, str, str]:
        """(backup_server, job_name, job_type): the job's labels, and its identity."""
        return (self.backup_server, self.job_name, self.job_type)


Entry = JobSessionRecord | UnreadableEntry


@dataclass(frozen=True, slots=True)
class Link:
    type: str
    name: str | None
    href: str | None


def _server_of(link: Link | None) -> str:
    if link is None:
        return ""
    name = (link.name or "").strip()
    if name:
        return name
    return (link.href or "").rstrip("/").rpartition("/")[2].partition("?")[0].strip()


def _flag(value: str | bool | None) -> bool:
    if isinstance(value, bool):
        return value
    return (value or "").strip().lower() in ("true", "1")


def _progress(value: str | None) -> float | None:
    try:
        number = float((value or "").strip())
    except ValueError:
        return None
    return number if 0.0 <= number <= 100.0 else None


def make_record(
    *,
    uid: str | None,
    job_name: str | None,
    job_type: str | None,
    created: str | None,
    ended: str | None,
    state: str | None,
    result: str | None,
    retry: str | bool | None,
    progress: str | None,
    server_link: Link | None,
    job_link: Link | None,
) -> Entry:
    """Read one session from its raw fields (None = absent or null).

    Unreadable: no UID or one longer than UID_LIMIT; no job name or one longer than
    JOB_NAME_LIMIT; a JobType or State longer than NAME_LIMIT; a backup server name longer than
    SERVER_NAME_LIMIT; no creation time, or an unreadable creation or end time.
    """
    uid = (uid or "").strip()
    if not uid:
        return UnreadableEntry("no UID")
    if len(uid) > UID_LIMIT:
        return UnreadableEntry(f"UID longer than {UID_LIMIT} characters")
    name = (job_name or "").strip() or ((job_link.name or "").strip() if job_link else "")
    if not name:
        return UnreadableEntry("no JobName")
    if len(name) > JOB_NAME_LIMIT:
        return UnreadableEntry(f"JobName longer than {JOB_NAME_LIMIT} characters")
    kind = (job_type or "").strip()
    if len(kind) > NAME_LIMIT:
        return UnreadableEntry(f"JobType longer than {NAME_LIMIT} characters")
    state = (state or "").strip()
    if len(state) > NAME_LIMIT:
        return UnreadableEntry(f"State longer than {NAME_LIMIT} characters")
    server = _server_of(server_link)
    if len(server) > SERVER_NAME_LIMIT:
        return UnreadableEntry(f"backup server name longer than {SERVER_NAME_LIMIT} characters")
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
    finished = state.lower() == STOPPED
    outcome = _RESULTS.get((result or "").strip().lower(), UNKNOWN) if finished else ""
    return JobSessionRecord(
        uid=valid_text(uid).lower(),
        # Interned: a few hundred distinct values repeated across tens of thousands of sessions.
        job_name=sys.intern(valid_text(name)),
        job_type=sys.intern(valid_text(kind)),
        backup_server=sys.intern(valid_text(server)),
        created=created_at,
        ended=ended_at,
        finished=finished,
        result=outcome,
        retry=_flag(retry),
        progress=_progress(progress),
    )


# --- XML ------------------------------------------------------------------------------------

# Lower-cased local names. A query answer: QueryResult/Entities/BackupJobSessions/
# BackupJobSession; a lookup's answer: the BackupJobSession itself.
_QUERY_PATH: Final = ("queryresult", "entities", "backupjobsessions", "backupjobsession")
_ENTITY_PATH: Final = ("backupjobsession",)
_PAGING: Final = "paginginfo"
_LINKS: Final = "links"
_LINK: Final = "link"
_FIELDS: Final = frozenset(
    {
        "jobname",
        "jobtype",
        "creationtimeutc",
        "endtimeutc",
        "state",
        "result",
        "progress",
        "isretry",
        "uid",
    }
)
# Every kept field is far shorter: past this, a field's text is only "too long".
_CAPTURE_LIMIT: Final = 4096
_NAME_CACHE: Final = 256


def _attribute(attrib: Mapping[str, str], name: str) -> str | None:
    value = attrib.get(name)
    if value is None:
        value = next((v for k, v in attrib.items() if k.lower() == name.lower()), None)
    return value


def _paging_of(values: Mapping[str, str | int | None]) -> Paging:
    def number(key: str) -> int | None:
        value = values.get(key)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip()) if value is not None else None
        except ValueError:
            return None

    return Paging(number("pagenum"), number("pagesize"), number("pagescount"))


class _Reader:
    """The XML parser's target: element and text events to entries, holding one entry's
    fields at most; every other element passes by."""

    def __init__(self, path: tuple[str, ...]) -> None:
        self.entries: list[Entry] = []
        self.paging: Paging | None = None
        self.events = 0
        self.root_seen = False
        self._path = path
        self._item_depth = len(path)
        self._depth = 0
        self._names: dict[str, str] = {}
        self._off_at = 0  # the depth that left the path (0: none)
        self._fields: dict[str, str] | None = None
        self._links: dict[str, Link] = {}
        self._in_links = False
        self._key = ""
        self._text: str | None = None

    def _name(self, tag: str) -> str:
        name = self._names.get(tag)
        if name is None:
            name = tag[tag.rfind("}") + 1 :].lower()
            if len(self._names) < _NAME_CACHE:
                self._names[tag] = name
        return name

    def doctype(self, *_: object) -> None:
        raise ParseError("the answer declares a DTD (<!DOCTYPE>), which is refused")

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        self.events += 1
        depth = self._depth = self._depth + 1
        fields = self._fields
        if fields is not None:  # inside an entry: the hot path, kept flat
            if self._text is not None:  # a child ends the text that counts
                fields[self._key] = self._text
                self._text = None
            level = depth - self._item_depth
            if level == 1:
                name = self._names.get(tag) or self._name(tag)
                self._in_links = name == _LINKS
                if name in _FIELDS:
                    self._key = name
                    self._text = ""
            elif level == 2 and self._in_links:
                self._link(tag, attrib)
            return
        if self._off_at:
            return
        name = self._name(tag)
        if depth == 1:
            self.root_seen = True
            _check_root(name, self._path[0])
        if depth <= self._item_depth and name == self._path[depth - 1]:
            if depth == self._item_depth:
                uid = attrib.get("UID")
                if uid is None:
                    uid = _attribute(attrib, "UID")
                self._fields = {} if uid is None else {"uid@": uid}
                self._links = {}
            return
        if depth == 2 and name == _PAGING:
            self.paging = _paging_of({k.lower(): v for k, v in attrib.items()})
        self._off_at = depth

    def _link(self, tag: str, attrib: Mapping[str, str]) -> None:
        if (self._names.get(tag) or self._name(tag)) != _LINK:
            return
        kind = attrib.get("Type")
        if kind is None:
            kind = _attribute(attrib, "Type")
        kind = (kind or "").strip().lower()
        if kind in (_SERVER_LINK, _JOB_LINK) and kind not in self._links:
            self._links[kind] = Link(kind, _attribute(attrib, "Name"), _attribute(attrib, "Href"))

    def end(self, tag: str) -> None:
        depth = self._depth
        self._depth = depth - 1
        if self._off_at:
            if depth == self._off_at:
                self._off_at = 0
            return
        if self._text is not None:
            self._fields[self._key] = self._text  # type: ignore[index]
            self._text = None
        elif depth == self._item_depth and self._fields is not None:
            self.entries.append(_xml_entry(self._fields, self._links))
            self._fields = None

    def data(self, text: str) -> None:
        self.events += 1
        if self._text is not None:
            text = self._text + text
            if len(text) > _CAPTURE_LIMIT:
                text = text.lstrip()
                if len(text) > _CAPTURE_LIMIT:  # too long whatever follows
                    self._fields[self._key] = text[: _CAPTURE_LIMIT + 1]  # type: ignore[index]
                    self._text = None
                    return
            self._text = text

    def close(self) -> None:
        return None


def _check_root(name: str, expected: str) -> None:
    if name == expected:
        return
    if name == "entityreferences":
        raise ParseError("the EM answered references instead of entities (format ignored)")
    raise ParseError(f"unexpected root element {name[:40]!r}, expected {expected!r}")


def _xml_entry(fields: Mapping[str, str], links: Mapping[str, Link]) -> Entry:
    return make_record(
        uid=fields.get("uid@") or fields.get("uid"),
        job_name=fields.get("jobname"),
        job_type=fields.get("jobtype"),
        created=fields.get("creationtimeutc"),
        ended=fields.get("endtimeutc"),
        state=fields.get("state"),
        result=fields.get("result"),
        retry=fields.get("isretry"),
        progress=fields.get("progress"),
        server_link=links.get(_SERVER_LINK),
        job_link=links.get(_JOB_LINK),
    )


class Answer:
    """The entries of one answer, read as they stream in; ``paging`` once they are read."""

    paging: Paging | None = None

    def __iter__(self) -> Iterator[Entry]:
        raise NotImplementedError


class _XMLAnswer(Answer):
    def __init__(self, stream: IO[bytes], path: tuple[str, ...]) -> None:
        self._stream = stream
        self._path = path

    def __iter__(self) -> Iterator[Entry]:
        reader = _Reader(self._path)
        events = reader.events

        def progress() -> bool:
            nonlocal events
            moved, events = reader.events != events, reader.events
            return moved

        yield from stream_xml(self._stream, reader, reader.entries, progress)
        if not reader.root_seen:
            raise ParseError("empty answer")
        self.paging = reader.paging


# --- JSON -----------------------------------------------------------------------------------


class _JSONText:
    """A JSON text read from a byte stream on demand: one key or one whole value at a time.

    A value is decoded by the standard library's scanner from the buffer; when the buffer ends
    inside it, more is read and the value decoded again, so no value costs more than its own
    length (bounded by JSON_VALUE_LIMIT) and the text before it is dropped as it is passed.
    """

    _decoder = json.JSONDecoder()

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        head = stream.read(_READ_SIZE)
        if not head:
            raise ParseError("empty answer")
        head = head.removeprefix(b"\xef\xbb\xbf")
        encoding = json.detect_encoding(head)
        self._text = codecs.getincrementaldecoder(encoding)("replace")
        self._buf = self._text.decode(head)
        self._pos = 0
        self._eof = False

    def _more(self) -> bool:
        if self._eof:
            return False
        if self._pos > _READ_SIZE:
            self._buf, self._pos = self._buf[self._pos :], 0
        if len(self._buf) - self._pos > JSON_VALUE_LIMIT:
            raise ParseError(f"a JSON value longer than {JSON_VALUE_LIMIT // 1024 // 1024} MiB")
        # Reads grow with the value being decoded, so a long one is decoded a few times only.
        chunk = self._stream.read(max(_READ_SIZE, len(self._buf) - self._pos))
        if chunk:
            self._buf += self._text.decode(chunk)
        else:
            self._eof = True
            self._buf += self._text.decode(b"", final=True)
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end), not consumed."""
        while True:
            buf, pos = self._buf, self._pos
            while pos < len(buf) and buf[pos] in " \t\r\n\ufeff":
                pos += 1
            self._pos = pos
            if pos < len(buf):
                return buf[pos]
            if not self._more():
                return ""

    def take(self, char: str) -> bool:
        if self.peek() == char:
            self._pos += 1
            return True
        return False

    def expect(self, char: str, what: str) -> None:
        if not self.take(char):
            got = self.peek()
            raise ParseError(f"malformed JSON: expected {what}, got {got[:1]!r}")

    def value(self) -> Any:
        self.peek()
        start = self._pos
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._more():
                    continue
                raise ParseError(f"malformed JSON: {exc}") from None
            # A number at the end of the buffer may go on in the next read.
            if end == len(self._buf) and not self._eof and self._more():
                continue
            if end - start > JSON_VALUE_LIMIT:
                raise ParseError(f"a JSON value longer than {JSON_VALUE_LIMIT // 1024 // 1024} MiB")
            self._pos = end
            return value

    def object_keys(self) -> Iterator[str]:
        """The keys of the object that starts here; the caller reads each key's value."""
        self.expect("{", "an object")
        if self.take("}"):
            return
        while True:
            if self.peek() != '"':
                raise ParseError("malformed JSON: expected a key")
            key = self.value()
            self.expect(":", "':'")
            yield key
            if self.take("}"):
                return
            self.expect(",", "',' or '}'")

    def array_items(self) -> Iterator[Any]:
        """The items of the array that starts here, each decoded whole."""
        self.expect("[", "an array")
        if self.take("]"):
            return
        while True:
            yield self.value()
            if self.take("]"):
                return
            self.expect(",", "',' or ']'")

    def end(self) -> None:
        if self.peek():
            raise ParseError("malformed JSON: more data after the answer")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise TypeError("not a scalar")


def _json_links(value: Any) -> dict[str, Link]:
    links: dict[str, Link] = {}
    if not isinstance(value, list):
        return links
    for item in value:
        if not isinstance(item, Mapping):
            continue
        fields = fold_keys(item)
        kind = (_text(fields.get("type")) or "").strip().lower()
        if kind in (_SERVER_LINK, _JOB_LINK) and kind not in links:
            links[kind] = Link(kind, _text(fields.get("name")), _text(fields.get("href")))
    return links


def json_entry(item: Any) -> Entry:
    """One session from a decoded JSON object (keys in any case)."""
    if not isinstance(item, Mapping):
        return UnreadableEntry("not an object")
    fields = fold_keys(item)
    try:
        links = _json_links(fields.get("links"))
        retry = fields.get("isretry")
        return make_record(
            uid=_text(fields.get("uid")),
            job_name=_text(fields.get("jobname")),
            job_type=_text(fields.get("jobtype")),
            created=_text(fields.get("creationtimeutc")),
            ended=_text(fields.get("endtimeutc")),
            state=_text(fields.get("state")),
            result=_text(fields.get("result")),
            retry=retry if isinstance(retry, bool) else _text(retry),
            progress=_text(fields.get("progress")),
            server_link=links.get(_SERVER_LINK),
            job_link=links.get(_JOB_LINK),
        )
    except TypeError:
        return UnreadableEntry("a field has the wrong JSON type")


class _JSONQuery(Answer):
    """``{"Entities": {"BackupJobSessions": {"BackupJobSessions": [...]}}, "PagingInfo": ...}``
    (any key case); a null or missing slot is an empty page."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[Entry]:
        text = _JSONText(self._stream)
        first = text.peek()
        if first == "[":  # a bare array of sessions
            for item in text.array_items():
                yield json_entry(item)
            text.end()
            return
        if first != "{":
            raise ParseError(f"malformed JSON: the answer starts with {first[:1]!r}")
        recognised = False
        for key in text.object_keys():
            name = key.lower() if isinstance(key, str) else ""
            if name == "entities":
                recognised = True
                yield from self._entities(text)
            elif name == "paginginfo":
                recognised = True
                paging = text.value()
                if isinstance(paging, Mapping):
                    self.paging = _paging_of(fold_keys(paging))
            else:
                text.value()
        text.end()
        if not recognised:
            raise ParseError("JSON object without 'Entities': not a query result")

    def _entities(self, text: _JSONText) -> Iterator[Entry]:
        if text.peek() != "{":
            text.value()  # null: no entities
            return
        for key in text.object_keys():
            if isinstance(key, str) and key.lower() == "backupjobsessions":
                yield from self._slot(text)
            else:
                text.value()

    def _slot(self, text: _JSONText) -> Iterator[Entry]:
        first = text.peek()
        if first == "[":
            for item in text.array_items():
                yield json_entry(item)
            return
        if first != "{":
            if text.value() is not None:
                raise ParseError("'BackupJobSessions' is neither an object nor an array")
            return
        for key in text.object_keys():
            if isinstance(key, str) and key.lower() == "backupjobsessions":
                if text.peek() == "[":
                    for item in text.array_items():
                        yield json_entry(item)
                elif text.value() is not None:
                    raise ParseError("'BackupJobSessions' is not an array")
            else:
                text.value()


class _JSONEntity(Answer):
    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[Entry]:
        text = _JSONText(self._stream)
        if text.peek() != "{":
            raise ParseError("malformed JSON: a session must be an object")
        item = text.value()
        text.end()
        yield json_entry(item)


Format = Literal["xml", "json"]


def read_query(stream: IO[bytes], fmt: Format) -> Answer:
    """A page of ``/api/query?type=BackupJobSession&format=Entities``."""
    return _JSONQuery(stream) if fmt == "json" else _XMLAnswer(stream, _QUERY_PATH)


def read_entity(stream: IO[bytes], fmt: Format) -> Answer:
    """The answer of ``/api/backupSessions/{id}?format=Entity``: one session."""
    return _JSONEntity(stream) if fmt == "json" else _XMLAnswer(stream, _ENTITY_PATH)
