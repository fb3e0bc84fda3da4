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


def _newness(record: SessionRecord) -> tuple[float, float, str]:
    # Newest is the latest creation time; ties go to the latest end time (a missing end is
    # older than any), then to the greater UID. The order of the answer never matters.
    return (record.created, record.ended if record.ended is not None else float("-inf"), record.uid)


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
    last_start: float = float("-inf")
    newest_finished: SessionRecord | None = None
    newest_success: SessionRecord | None = None
    newest_failure: SessionRecord | None = None
    oldest_running_start: float | None = None
    canceled: int = 0
    states: dict[str, int] = field(default_factory=dict)
    fresh: dict[str, FinishedSession] = field(default_factory=dict)  # finished, not yet counted

    @property
    def entries(self) -> int:
        return sum(self.states.values())

    def add(self, record: SessionRecord) -> None:
        self.states[record.state] = self.states.get(record.state, 0) + 1
        if record.canceled:
            self.canceled += 1
        self.last_start = max(self.last_start, record.created)
        if record.running:
            if self.oldest_running_start is None or record.created < self.oldest_running_start:
                self.oldest_running_start = record.created
            return
        if self.newest_finished is None or _newness(record) > _newness(self.newest_finished):
            self.newest_finished = record
        if record.result == SUCCESS:
            if self.newest_success is None or _newness(record) > _newness(self.newest_success):
                self.newest_success = record
        elif record.result == FAILED and (
            self.newest_failure is None or _newness(record) > _newness(self.newest_failure)
        ):
            self.newest_failure = record


@dataclass(frozen=True)
class PollResult:
    """Everything one pass over an answer produced, before it is committed."""

    snapshot: ServerSnapshot
    newly_finished: tuple[FinishedSession, ...]
    skipped: int  # unreadable entries plus the entries of dropped types
    # The session_types filter the answer was read with: the ledger remembers it to tell a
    # type the next filter starts to allow from a type the EM starts to report.
    allows: Callable[[str], bool]
    # UIDs in the answer created before the retention horizon: pruning must keep them.
    retained: frozenset[str] = frozenset()
    dropped_types: frozenset[str] = frozenset()  # beyond max_types
    dropped_entries: int = 0
    newest_created: float | None = None  # the EM's clock, as far as its answer shows it
    # Why entries were unreadable ("no UID", ...: a short fixed vocabulary), with counts.
    unreadable: Mapping[str, int] = field(default_factory=dict)


def build(
    entries: Iterable[Entry],
    *,
    taken_at: float,
    allows: Callable[[str], bool],
    already_counted: Callable[[str], bool],
    counted_types: Set[str] = frozenset(),
    max_types: int | None = None,
) -> PollResult:
    """One pass over an answer: the snapshot plus the finished sessions not yet counted.

    ``already_counted`` is the ledger's membership test; only finished sessions it does not
    know are kept, so the pass holds a handful of records however long the answer is.

    ``max_types`` caps the types kept, ``counted_types`` (the types that already hold
    counters) included: those are always kept, so a counter never disappears, and the room
    left goes to the other types of the answer in sorted order. The entries of every other
    type are dropped and counted in ``skipped``.
    """
    per_type: dict[str, _TypeAccumulator] = {}
    room = None if max_types is None else max(0, max_types - len(counted_types))
    # The types without counters admitted so far, sorted. When the room is full, a type that
    # sorts after all of them is dropped at once and one that sorts before evicts the last,
    # so an answer of 10,000 types never holds more than max_types accumulators.
    newcomers: list[str] = []
    dropped: set[str] = set()
    dropped_entries = 0
    unreadable: dict[str, int] = {}
    retained: set[str] = set()
    # The prune's horizon is at most taken_at minus the retention, so only entries older
    # than that can be reached by it; they are kept whatever the filter or the cap says.
    old_before = taken_at - UID_RETENTION_SECONDS
    newest_created: float | None = None
    for entry in entries:
        if isinstance(entry, UnreadableEntry):
            unreadable[entry.why] = unreadable.get(entry.why, 0) + 1
            continue
        if newest_created is None or entry.created > newest_created:
            newest_created = entry.created
        if entry.created < old_before:
            retained.add(entry.uid)
        session_type = entry.session_type
        acc = per_type.get(session_type)
        if acc is None:
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
            acc = per_type[session_type] = _TypeAccumulator()
        acc.add(entry)
        if not entry.running and not already_counted(entry.uid):
            acc.fresh[entry.uid] = FinishedSession(
                entry.uid, entry.session_type, entry.result, entry.duration, entry.created
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
        newest_created=newest_created,
        unreadable=MappingProxyType(unreadable),
    )


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
        self._counted: dict[str, float] = {}  # UID -> creation time, for pruning
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
        return uid in self._counted

    def __len__(self) -> int:
        return len(self._counted)

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
        for record in result.newly_finished:
            if record.uid in self._counted:
                continue
            self._counted[record.uid] = record.created
            if not self._baseline_taken or record.session_type in baseline:
                continue
            key = (record.session_type, record.result)
            self._finished[key] = self._finished.get(key, 0) + 1
            duration = record.duration
            if duration is not None:
                self._buckets[record.session_type][bisect_left(DURATION_BUCKETS, duration)] += 1
                self._sums[record.session_type] += duration
        self._baseline_taken = True
        self._allowed = result.allows
        self._dropped = result.dropped_types
        # The EM decides what its 30-day window holds, by its own clock. If that clock runs
        # behind ours, pruning by ours alone could forget sessions still in the window and
        # count them again; the newest creation time in the answer bounds the EM's "now".
        horizon = min(now, result.snapshot.taken_at, result.newest_created)
        self._prune(horizon - UID_RETENTION_SECONDS, keep=result.retained)
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

    def _prune(self, horizon: float, keep: Set[str]) -> None:
        # A UID still in the answer is kept however old: forgotten, it would count again.
        stale = [
            uid for uid, created in self._counted.items() if created < horizon and uid not in keep
        ]
        for uid in stale:
            del self._counted[uid]

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
