"""Session records -> an immutable ``ServerSnapshot``, and the ``FinishedLedger`` of counters.

Pure: the caller feeds records and a clock reading; nothing here does I/O. The snapshot
describes one answer (gauges), of at most ``max_types`` session types. The ledger remembers
which finished sessions were already counted so that each UID is counted once, ever, and
freezes its counters into an immutable ``LedgerView`` after every successful poll so that a
scrape never sees a half-updated state.
"""

from __future__ import annotations

import re
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from exporter.parse import Entry, SessionRecord, UnreadableEntry
from exporter.uidtable import UidTable, uid_key
from exporter.vocabulary import FAILED, KNOWN_STATES, RESULTS, SUCCESS

DURATION_BUCKETS = (
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
    86400.0,
)
MESSAGE_LIMIT = 200
# The EM answers 30 days of sessions; a UID is forgotten only once its creation time is
# older than that window plus this margin, so clock skew or a late answer cannot make a
# forgotten session reappear and be counted again.
UID_RETENTION_SECONDS = (30 + 3) * 86400.0

_WHITESPACE = re.compile(r"\s+")


def clean_message(message: str) -> str:
    """Collapse whitespace and cut to 200 code points, so a label value stays short and stable."""
    return _WHITESPACE.sub(" ", message).strip()[:MESSAGE_LIMIT]


# Newest is the latest creation time; ties go to the latest end time (a missing end is older
# than any), then to the greater UID. The order of the answer never matters.
_NO_END = float("-inf")


def _wins_tie(record: SessionRecord, than: SessionRecord | None) -> bool:
    """Whether ``record`` is the newer of two sessions created at the same time."""
    if than is None:
        return True
    ended = _NO_END if record.ended is None else record.ended
    other = _NO_END if than.ended is None else than.ended
    return ended > other or (ended == other and record.uid > than.uid)


@dataclass(frozen=True)
class TypeSummary:
    """What the gauges say about one session type in one answer."""

    last_start: float
    newest_finished: SessionRecord | None
    newest_success: SessionRecord | None
    newest_failure: SessionRecord | None
    oldest_running_start: float | None


@dataclass(frozen=True)
class ServerSnapshot:
    """One successful answer, reduced to what the gauges need."""

    taken_at: float
    sessions: Mapping[tuple[str, str], int]  # (session_type, state) -> count
    canceled: Mapping[str, int]
    types: Mapping[str, TypeSummary]


class FinishedSession(NamedTuple):
    """What the ledger needs of a finished session: a tuple, as there may be 100,000 of
    them at the baseline poll."""

    uid: str
    session_type: str
    result: str
    duration: float | None
    created: float


@dataclass(slots=True)
class _TypeAccumulator:
    # Whether the ledger counts this type's finished sessions that are new to it, or only
    # remembers them (its baseline for the type).
    counts: bool = True
    last_start: float = float("-inf")
    newest_finished: SessionRecord | None = None
    newest_success: SessionRecord | None = None
    newest_failure: SessionRecord | None = None
    # The creation times of the three newest, so that most sessions are judged by one
    # comparison.
    finished_at: float = float("-inf")
    success_at: float = float("-inf")
    failure_at: float = float("-inf")
    oldest_running_start: float | None = None
    canceled: int = 0
    states: dict[str, int] = field(default_factory=dict)
    fresh: dict[str, FinishedSession] = field(default_factory=dict)  # to count

    @property
    def entries(self) -> int:
        return sum(self.states.values())


@dataclass(frozen=True)
class PollResult:
    """Everything one pass over an answer produced, before it is committed."""

    snapshot: ServerSnapshot
    # The finished sessions new to the ledger that it counts (without a ledger: all of them).
    newly_finished: tuple[FinishedSession, ...]
    skipped: int  # unreadable entries plus the entries of dropped types
    # The session_types filter the answer was read with: the ledger remembers it to tell a
    # type the next filter starts to allow from a type the EM starts to report.
    allows: Callable[[str], bool]
    # The keys (uidtable.uid_key) of the UIDs in the answer created before the retention
    # horizon: pruning must keep them.
    retained: frozenset[bytes] = frozenset()
    dropped_types: frozenset[str] = frozenset()  # beyond max_types
    dropped_entries: int = 0
    newest_created: float | None = None  # the EM's clock, as far as its answer shows it
    # Why entries were unreadable ("no UID", ...: a short fixed vocabulary), with counts.
    unreadable: Mapping[str, int] = field(default_factory=dict)
    # The finished sessions new to the ledger that it only remembers (its baseline), 24
    # bytes each; the ledger copies them at commit.
    remembered: UidTable | None = None

    @property
    def fresh(self) -> int:
        """Finished sessions new to the ledger: counted or only remembered."""
        return len(self.newly_finished) + (len(self.remembered) if self.remembered else 0)


def build(
    entries: Iterable[Entry],
    *,
    taken_at: float,
    allows: Callable[[str], bool],
    already_counted: Callable[[str], bool] | None = None,
    counted_types: Set[str] = frozenset(),
    max_types: int | None = None,
    ledger: FinishedLedger | None = None,
) -> PollResult:
    """One pass over an answer: the snapshot plus the finished sessions not yet counted.

    Give it the ``ledger`` the result will be committed to (as the poller does); then the
    finished sessions the ledger will only remember (its baseline: the first answer, or a
    type it starts to admit) are kept packed, 24 bytes each, instead of as tuples. The
    result must then be committed to that ledger before it changes. Without a ledger,
    ``already_counted`` is the membership test and ``counted_types`` the types that hold
    counters. Only finished sessions the ledger does not know are kept, so a steady pass
    holds a handful of records however long the answer is.

    ``max_types`` caps the types kept, ``counted_types`` (the types that already hold
    counters) included: those are always kept, so a counter never disappears, and the room
    left goes to the other types of the answer in sorted order. The entries of every other
    type are dropped and counted in ``skipped``.
    """
    known: Callable[[str], bool] | None = already_counted
    keys: UidTable | None = None
    counts: Callable[[str], bool] = _always
    if ledger is not None:
        keys, counts, counted_types = ledger._uids, ledger.counts, ledger.session_types
    elif known is None:
        raise TypeError("build() needs a ledger or already_counted")
    per_type: dict[str, _TypeAccumulator] = {}
    room = None if max_types is None else max(0, max_types - len(counted_types))
    # The types without counters admitted so far, sorted. When the room is full, a type that
    # sorts after all of them is dropped at once and one that sorts before evicts the last,
    # so an answer of 10,000 types never holds more than max_types accumulators.
    newcomers: list[str] = []
    dropped: set[str] = set()
    dropped_entries = 0
    unreadable: dict[str, int] = {}
    retained: set[bytes] = set()
    # The prune's horizon is at most taken_at minus the retention, so only entries older
    # than that can be reached by it; they are kept whatever the filter or the cap says.
    old_before = taken_at - UID_RETENTION_SECONDS
    readable = 0
    newest_created = float("-inf")
    # The finished sessions of the types the ledger does not count yet: one table for all
    # types, so that a UID in two of them is remembered once. A type evicted by the cap
    # leaves its UIDs there; the ledger would not count them on its return either (it
    # comes back withheld, as its own baseline).
    remembered: UidTable | None = None
    for entry in entries:
        if isinstance(entry, UnreadableEntry):
            unreadable[entry.why] = unreadable.get(entry.why, 0) + 1
            continue
        uid, session_type, state, created, ended, running, result, canceled, _ = entry
        readable += 1
        if created > newest_created:
            newest_created = created
        if created < old_before:
            retained.add(uid_key(uid))
        try:
            acc = per_type[session_type]
        except KeyError:
            if not allows(session_type):
                continue
            if session_type in dropped:
                dropped_entries += 1
                continue
            if room is not None and session_type not in counted_types:
                if len(newcomers) >= room:
                    if room == 0 or session_type > newcomers[-1]:
                        dropped.add(session_type)
                        dropped_entries += 1
                        continue
                    evicted = newcomers.pop()
                    dropped.add(evicted)
                    dropped_entries += per_type.pop(evicted).entries
                insort(newcomers, session_type)
            acc = per_type[session_type] = _TypeAccumulator(counts(session_type))
        states = acc.states
        try:
            states[state] += 1
        except KeyError:
            states[state] = 1
        if canceled:
            acc.canceled += 1
        if created > acc.last_start:
            acc.last_start = created
        if running:
            if acc.oldest_running_start is None or created < acc.oldest_running_start:
                acc.oldest_running_start = created
            continue
        if created > acc.finished_at or (
            created == acc.finished_at and _wins_tie(entry, acc.newest_finished)
        ):
            acc.newest_finished, acc.finished_at = entry, created
        if result == SUCCESS:
            if created > acc.success_at or (
                created == acc.success_at and _wins_tie(entry, acc.newest_success)
            ):
                acc.newest_success, acc.success_at = entry, created
        elif result == FAILED and (
            created > acc.failure_at
            or (created == acc.failure_at and _wins_tie(entry, acc.newest_failure))
        ):
            acc.newest_failure, acc.failure_at = entry, created
        if keys is None:
            if known(uid):  # type: ignore[misc]
                continue
        else:
            key = uid_key(uid)
            if key in keys:
                continue
            if not acc.counts:
                if remembered is None:
                    remembered = UidTable.like(keys)
                remembered.add(key, created)
                continue
        acc.fresh[uid] = FinishedSession._make(
            (
                uid,
                session_type,
                result,
                None if ended is None else max(0.0, ended - created),
                created,
            )
        )

    sessions: dict[tuple[str, str], int] = {}
    for session_type, acc in per_type.items():
        for state in KNOWN_STATES:
            sessions[(session_type, state)] = 0
        for state, count in acc.states.items():
            sessions[(session_type, state)] = count
    snapshot = ServerSnapshot(
        taken_at=taken_at,
        sessions=MappingProxyType(sessions),
        canceled=MappingProxyType({t: a.canceled for t, a in per_type.items()}),
        types=MappingProxyType(
            {
                t: TypeSummary(
                    last_start=a.last_start,
                    newest_finished=a.newest_finished,
                    newest_success=a.newest_success,
                    newest_failure=a.newest_failure,
                    oldest_running_start=a.oldest_running_start,
                )
                for t, a in per_type.items()
            }
        ),
    )
    fresh = {uid: f for acc in per_type.values() for uid, f in acc.fresh.items()}
    return PollResult(
        snapshot=snapshot,
        newly_finished=tuple(fresh.values()),
        skipped=sum(unreadable.values()) + dropped_entries,
        allows=allows,
        retained=frozenset(retained),
        dropped_types=frozenset(dropped),
        dropped_entries=dropped_entries,
        newest_created=newest_created if readable else None,
        unreadable=MappingProxyType(unreadable),
        remembered=remembered,
    )


def _always(_: str) -> bool:
    return True


@dataclass(frozen=True)
class HistogramView:
    bucket_counts: tuple[int, ...]  # per bucket of DURATION_BUCKETS plus +Inf, not cumulative
    total: float
    count: int


@dataclass(frozen=True)
class LedgerView:
    """The counters of one server at one moment; safe to read from any thread."""

    finished: Mapping[tuple[str, str], int]  # (session_type, result) -> count
    durations: Mapping[str, HistogramView]


EMPTY_LEDGER_VIEW = LedgerView(finished=MappingProxyType({}), durations=MappingProxyType({}))


class FinishedLedger:
    """Counts each finished session once, ever, and keeps the duration histogram.

    Baselines: the first answer with a readable entry counts nothing (its finished sessions
    are history, not news); later, a type the previous answer withheld (the filter then in
    force did not allow it, or it was beyond the type cap) counts nothing in the first answer
    that admits it. A type that simply appears is counted. An answer without a readable entry
    teaches the ledger nothing: no baseline, no pruning.

    Used by one poller thread only; readers get ``view()`` copies.
    """

    def __init__(self) -> None:
        self._uids = UidTable()  # the UIDs counted or remembered, with their creation time
        self._finished: dict[tuple[str, str], int] = {}
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._types: set[str] = set()
        self._baseline_taken = False
        # What the last answer with a readable entry was read with, and what it withheld.
        self._allowed: Callable[[str], bool] = lambda _: True
        self._dropped: frozenset[str] = frozenset()
        self._view = EMPTY_LEDGER_VIEW

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, str) and uid_key(uid) in self._uids

    def __len__(self) -> int:
        return len(self._uids)

    def counts(self, session_type: str) -> bool:
        """Whether a finished session of this type that is new to the ledger would be
        counted by the next commit, or only remembered (the ledger's baseline for it)."""
        return self._baseline_taken and not self._withheld(session_type)

    @property
    def session_types(self) -> Set[str]:
        """The types that hold counters; they keep them, whatever the type cap says."""
        return self._types

    def commit(self, result: PollResult, *, now: float) -> LedgerView:
        """Record a successful poll and freeze the counters."""
        if result.newest_created is None:
            return self._view
        baseline = {t for t in result.snapshot.types if self._withheld(t)}
        for session_type in result.snapshot.types:
            self._add_type(session_type)
        uids = self._uids
        for record in result.newly_finished:
            if not uids.add(uid_key(record.uid), record.created):
                continue
            if not self._baseline_taken or record.session_type in baseline:
                continue
            key = (record.session_type, record.result)
            self._finished[key] = self._finished.get(key, 0) + 1
            duration = record.duration
            if duration is not None:
                self._buckets[record.session_type][bisect_left(DURATION_BUCKETS, duration)] += 1
                self._sums[record.session_type] += duration
        if result.remembered is not None:
            uids.update(result.remembered)
        self._baseline_taken = True
        self._allowed = result.allows
        self._dropped = result.dropped_types
        # The EM decides what its 30-day window holds, by its own clock. If that clock runs
        # behind ours, pruning by ours alone could forget sessions still in the window and
        # count them again; the newest creation time in the answer bounds the EM's "now".
        horizon = min(now, result.snapshot.taken_at, result.newest_created)
        # A UID still in the answer is kept however old: forgotten, it would count again.
        uids.prune(horizon - UID_RETENTION_SECONDS, keep=result.retained)
        self._view = self._freeze()
        return self._view

    def view(self) -> LedgerView:
        return self._view

    def _withheld(self, session_type: str) -> bool:
        """Whether the last answer kept this type out: then its sessions, finished while it
        was out, are history to this ledger and not news."""
        return session_type in self._dropped or not self._allowed(session_type)

    def _add_type(self, session_type: str) -> None:
        if session_type in self._types:
            return
        self._types.add(session_type)
        for result in RESULTS:
            self._finished.setdefault((session_type, result), 0)
        self._buckets[session_type] = [0] * (len(DURATION_BUCKETS) + 1)
        self._sums[session_type] = 0.0

    def _freeze(self) -> LedgerView:
        return LedgerView(
            finished=MappingProxyType(dict(self._finished)),
            durations=MappingProxyType(
                {
                    t: HistogramView(
                        bucket_counts=tuple(self._buckets[t]),
                        total=self._sums[t],
                        count=sum(self._buckets[t]),
                    )
                    for t in self._types
                }
            ),
        )
