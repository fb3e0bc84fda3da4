"""Every call the bench makes into the exporter's data path, in one place.

The parser and the snapshot may change their entry points; this module is the only one to
adapt when they do. Everything else in bench/ goes through these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Literal

from exporter.parse import Entry, iter_entries, make_record
from exporter.snapshot import FinishedLedger, PollResult, build

Format = Literal["xml", "json"]


def new_ledger() -> FinishedLedger:
    return FinishedLedger()


def _allow_all(_: str) -> bool:
    return True


def aggregate(entries: Iterable[Entry], ledger: FinishedLedger, *, taken_at: float) -> PollResult:
    """The snapshot and ledger build of one poll over ``entries``, committed to ``ledger``."""
    # As the system-session feed builds: into the ledger, which keeps a baseline packed.
    result = build(entries, taken_at=taken_at, allows=_allow_all, ledger=ledger)
    ledger.commit(result, now=taken_at)
    return result


def poll(stream: IO[bytes], fmt: Format, ledger: FinishedLedger, *, taken_at: float) -> PollResult:
    """One poll as the poller makes it: parse the answer, build, commit."""
    return aggregate(iter_entries(stream, fmt), ledger, taken_at=taken_at)


def parse_only(stream: IO[bytes], fmt: Format) -> int:
    """Read every entry and keep none; the count of entries read."""
    count = 0
    for _ in iter_entries(stream, fmt):
        count += 1
    return count


def record(
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
    """One entry from its raw field values, read by the exporter's rules (for the peers,
    which find the fields their own way and then aggregate the same way)."""
    return make_record(
        uid=uid,
        session_type=session_type,
        state=state,
        created=created,
        ended=ended,
        result=result,
        message=message,
        canceled=canceled,
    )


def sessions_in(result: PollResult) -> int:
    """How many sessions the snapshot counted: every contestant must agree on it."""
    return sum(result.snapshot.sessions.values())
