"""The query service's filter, sort and paging rules (`GET /api/query`).

Filter grammar, as Veeam documents it and clients use it:

    filter     := and (',' and)*            ',' is OR
    and        := term (';' term)*          ';' is AND, binding tighter than OR
    term       := '(' filter ')' | comparison
    comparison := field op value            op: == != >= <= > <
    value      := "quoted" | bare           a quote inside quotes is doubled; a bare value
                                            runs to the next ; , ( or ) and is trimmed

Field names and enumeration values match without regard to case; string values compare
without regard to case (SQL Server's default collation); enumerations compare by their
declaration order (Result: None < Success < Warning < Failed). A date is `YYYY-MM-DD`,
optionally followed by `THH:MM[:SS[.fraction]]` and `Z` or an offset; without a zone it is
taken as UTC. A comparison with a missing value (EndTime of a running session) is false,
whatever the operator, as in SQL.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import quote_plus

from exporter.simulator.estate import (
    AGENT_BACKUP,
    AGENT_MANAGEMENT,
    BACKUP,
    BACKUP_COPY,
    COPY_WORKER,
    IMMEDIATE_COPY,
    NAS_BACKUP,
    REPLICA,
)
from exporter.simulator.job_model import (
    EXTRA_STATES,
    RESULTS,
    STATES,
    TASK_STATES,
    SimJobSession,
    SimTaskSession,
)
from exporter.simulator.links import Link


class QueryError(ValueError):
    """A request the query service refuses (400)."""


Kind = Literal["string", "uid", "enum", "date", "bool", "int"]
Getter = Callable[[Any], object]
Predicate = Callable[[Any], bool]

JOB_TYPES = (
    BACKUP,
    REPLICA,
    BACKUP_COPY,
    IMMEDIATE_COPY,
    COPY_WORKER,
    AGENT_BACKUP,
    AGENT_MANAGEMENT,
    NAS_BACKUP,
)


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    get: Getter
    values: tuple[str, ...] = ()  # an enumeration's values in declaration order


def _fields(*items: Field) -> dict[str, Field]:
    return {f.name.lower(): f for f in items}


def _urn(kind: str, attr: str) -> Getter:
    def get(s: Any) -> object:
        return f"urn:veeam:{kind}:{getattr(s, attr)}"

    return get


def _session_uid(s: SimJobSession) -> object:
    return s.uid


JOB_SESSION_FIELDS = _fields(
    Field("UID", "uid", _session_uid),
    Field("Name", "string", lambda s: s.name),
    Field("JobType", "enum", lambda s: s.job_type, JOB_TYPES),
    Field("JobUid", "uid", _urn("Job", "job_uid")),
    Field("JobName", "string", lambda s: s.job_name),
    Field("CreationTime", "date", lambda s: s.created),
    Field("EndTime", "date", lambda s: s.ended),
    Field("State", "enum", lambda s: s.state, STATES + EXTRA_STATES),
    Field("Result", "enum", lambda s: s.result, RESULTS),
    Field("IsRetry", "bool", lambda s: s.is_retry),
    Field("BackupServerUid", "uid", _urn("BackupServer", "backup_server_uid")),
    Field("BackupServerName", "string", lambda s: s.backup_server),
)


def _task_uid(t: SimTaskSession) -> object:
    return f"urn:veeam:BackupTaskSession:{t.id}"


TASK_SESSION_FIELDS = _fields(
    Field("UID", "uid", _task_uid),
    Field("Name", "string", lambda t: t.name),
    Field("JobSessionUid", "uid", lambda t: t.session.uid),
    Field("JobUid", "uid", lambda t: f"urn:veeam:Job:{t.session.job_uid}"),
    Field("JobName", "string", lambda t: t.session.job_name),
    Field("CreationTime", "date", lambda t: t.created),
    Field("EndTime", "date", lambda t: t.ended),
    Field("State", "enum", lambda t: t.state, TASK_STATES),
    Field("Result", "enum", lambda t: t.result, RESULTS),
    Field("Reason", "string", lambda t: t.reason),
    Field("TotalSize", "int", lambda t: t.total_size),
    Field(
        "BackupServerUid", "uid", lambda t: f"urn:veeam:BackupServer:{t.session.backup_server_uid}"
    ),
    Field("BackupServerName", "string", lambda t: t.session.backup_server),
    Field("VmDisplayName", "string", lambda t: t.vm_name),
)

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
_OP = re.compile(r"(==|!=|>=|<=|>|<)\s*")
_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?",
    re.IGNORECASE,
)
_UNKNOWN_INDEX = 1 << 20  # an enumeration value no declaration knows sorts after all others


def parse_date(text: str) -> datetime:
    found = _DATE.fullmatch(text.strip())
    if not found:
        raise QueryError(f"'{text}' is not a valid date and time.")
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    micro = int((fraction or "0").ljust(7, "0")[:6])
    tz: timezone = UTC
    if zone and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=tz,
        )
    except ValueError as exc:
        raise QueryError(f"'{text}' is not a valid date and time.") from exc
    return moment.astimezone(UTC)


def _key_of(f: Field) -> Callable[[object], object]:
    """Turns a record's value into what comparisons and sorting use."""
    if f.kind == "string":
        return lambda v: str(v).casefold()
    if f.kind == "uid":
        return lambda v: str(v).casefold()
    if f.kind == "enum":
        index = {value.casefold(): i for i, value in enumerate(f.values)}
        return lambda v: index.get(str(v).casefold(), _UNKNOWN_INDEX)
    return lambda v: v


def _value_of(f: Field, text: str) -> object:
    """The filter's value in the form `_key_of` gives the record's value."""
    if f.kind in ("string", "uid"):
        return text.casefold()
    if f.kind == "enum":
        for i, value in enumerate(f.values):
            if value.casefold() == text.casefold():
                return i
        raise QueryError(f"'{text}' is not a valid value of {f.name}.")
    if f.kind == "date":
        return parse_date(text)
    if f.kind == "bool":
        if text.casefold() in ("true", "false"):
            return text.casefold() == "true"
        raise QueryError(f"'{text}' is not a valid value of {f.name} (true or false).")
    try:
        return int(text)
    except ValueError as exc:
        raise QueryError(f"'{text}' is not a valid value of {f.name}.") from exc


def _comparison(f: Field, op: str, text: str) -> Predicate:
    compare = _OPS[op]
    key = _key_of(f)
    get = f.get
    value = _value_of(f, text)
    if f.kind == "uid" and ":" not in text:
        # A bare GUID matches the GUID part of the URN.
        def bare(record: Any) -> bool:
            found = get(record)
            return found is not None and compare(str(found).rsplit(":", 1)[-1].casefold(), value)

        return bare

    def test(record: Any) -> bool:
        found = get(record)
        return found is not None and compare(key(found), value)

    return test


class _Parser:
    def __init__(self, text: str, fields: dict[str, Field], type_name: str) -> None:
        self.text = text
        self.at = 0
        self.fields = fields
        self.type_name = type_name

    def error(self, what: str) -> QueryError:
        return QueryError(f"Failed to parse filter '{self.text}': {what} at position {self.at}.")

    def skip_space(self) -> None:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.at] if self.at < len(self.text) else ""

    def parse(self) -> Predicate:
        predicate = self.any_of()
        if self.peek():
            raise self.error(f"unexpected '{self.peek()}'")
        return predicate

    def any_of(self) -> Predicate:
        parts = [self.all_of()]
        while self.peek() == ",":
            self.at += 1
            parts.append(self.all_of())
        if len(parts) == 1:
            return parts[0]
        return lambda record: any(p(record) for p in parts)

    def all_of(self) -> Predicate:
        parts = [self.term()]
        while self.peek() == ";":
            self.at += 1
            parts.append(self.term())
        if len(parts) == 1:
            return parts[0]
        return lambda record: all(p(record) for p in parts)

    def term(self) -> Predicate:
        if self.peek() == "(":
            self.at += 1
            inner = self.any_of()
            if self.peek() != ")":
                raise self.error("')' expected")
            self.at += 1
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        name = _NAME.match(self.text, self.at)
        if not name:
            raise self.error("a field name expected")
        field = self.fields.get(name.group(1).lower())
        if field is None:
            raise QueryError(
                f"Unknown filter field '{name.group(1)}' for query type {self.type_name}."
            )
        self.at = name.end()
        op = _OP.match(self.text, self.at)
        if not op:
            raise self.error("a comparison operator (== != >= <= > <) expected")
        self.at = op.end()
        return _comparison(field, op.group(1), self.value())

    def value(self) -> str:
        text = self.text
        if self.at < len(text) and text[self.at] == '"':
            out = []
            self.at += 1
            while True:
                end = text.find('"', self.at)
                if end < 0:
                    raise self.error("unterminated quoted value")
                out.append(text[self.at : end])
                self.at = end + 1
                if text.startswith('"', self.at):  # a doubled quote is one quote
                    out.append('"')
                    self.at += 1
                    continue
                break
            if self.peek() not in ("", ";", ",", ")"):
                raise self.error("';', ',' or ')' expected after a quoted value")
            return "".join(out)
        start = self.at
        while self.at < len(text) and text[self.at] not in ';,()"':
            self.at += 1
        value = text[start : self.at].strip()
        if not value:
            raise self.error("a value expected")
        if self.at < len(text) and text[self.at] in '("':
            raise self.error(f"unexpected '{text[self.at]}' in a value")
        return value


def compile_filter(text: str, fields: dict[str, Field], type_name: str) -> Predicate | None:
    """The filter as a predicate; None for an empty filter. QueryError if malformed."""
    if not text.strip():
        return None
    return _Parser(text, fields, type_name).parse()


def sort_field(name: str, fields: dict[str, Field], type_name: str) -> Field:
    found = fields.get(name.strip().lower())
    if found is None:
        raise QueryError(f"Unknown sort field '{name}' for query type {type_name}.")
    return found


def sorted_by(
    items: Sequence[Any], field: Field, *, descending: bool, em_version: str
) -> list[Any]:
    """Stable, so ties keep primary-key order. Missing values sort first ascending on SQL
    Server (v12) and last on PostgreSQL (v13)."""
    key = _key_of(field)
    missing_first = em_version == "12"

    def sort_key(record: Any) -> tuple[int, object]:
        value = field.get(record)
        if value is None:
            return (0 if missing_first else 2, 0)
        return (1, key(value))

    return sorted(items, key=sort_key, reverse=descending)


# Paging.

DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class Paging:
    page: int
    page_size: int
    pages: int
    first: int  # index of the page's first item


def paging(total: int, page_size_text: str | None, page_text: str | None, cap: int) -> Paging:
    size = (
        _positive(page_size_text, "pageSize") if page_size_text is not None else DEFAULT_PAGE_SIZE
    )
    if cap > 0:
        size = min(size, cap)
    page = _positive(page_text, "page") if page_text is not None else 1
    pages = -(-total // size)
    return Paging(page=page, page_size=size, pages=pages, first=(page - 1) * size)


def _positive(text: str, name: str) -> int:
    try:
        value = int(text.strip())
    except ValueError as exc:
        raise QueryError(f"The {name} parameter must be a positive integer, not '{text}'.") from exc
    if value < 1:
        raise QueryError(f"The {name} parameter must be a positive integer, not '{text}'.")
    return value


def page_links(
    base: str,
    pairs: Sequence[tuple[str, str]],
    p: Paging,
    *,
    previous: bool,
    upper_hex: bool,
) -> list[Link]:
    """First, (Previous), Next when there is more, Last: the request's own parameters in
    its order, pageSize and page set in place or appended, values percent-encoded."""

    def href(page: int) -> str:
        out: list[tuple[str, str]] = []
        seen_size = seen_page = False
        for name, value in pairs:
            if name.lower() == "pagesize":
                value, seen_size = str(p.page_size), True
            elif name.lower() == "page":
                value, seen_page = str(page), True
            out.append((name, value))
        if not seen_size:
            out.append(("pageSize", str(p.page_size)))
        if not seen_page:
            out.append(("page", str(page)))
        query = "&".join(f"{quote_plus(k)}={_encode(v, upper_hex)}" for k, v in out)
        return f"{base}/query?{query}"

    last = max(1, p.pages)
    links = [Link("First", href(1))]
    if previous and p.page > 1:
        links.append(Link("Previous", href(min(p.page - 1, last))))
    if p.page < p.pages:
        links.append(Link("Next", href(p.page + 1)))
    links.append(Link("Last", href(last)))
    return links


_HEX = re.compile(r"%[0-9A-F]{2}")


def _encode(value: str, upper_hex: bool) -> str:
    encoded = quote_plus(value, safe=";")
    return encoded if upper_hex else _HEX.sub(lambda m: m.group(0).lower(), encoded)
