"""Job-session records -> the ledger of counted sessions, per-job state, an immutable view. Pure.

A poll gathers its entries into a :class:`PollAnswer` (both queries and the lookups, one entry
per session UID); :meth:`JobLedger.commit` then folds the answer in and freezes a
:class:`JobView` for the collector. The ledger lives across polls (and across a reload of the
same server); a poll that fails is never committed, so it changes nothing.

The rules:

- A session is counted once, ever, when first seen finished (by its lower-cased UID). Sessions
  already finished in the first answer that has a readable entry are the baseline and are not
  counted; nor are those of a job type that the previous answer's ``job_types`` filter kept out.
- Per job (backup server, job name, job type) the newest session, the newest finished one and
  the newest success and failure are kept across polls, so a weekly job keeps its last result;
  "newest" is the latest creation time, then the latest end time, then the UID. A job is dropped
  30 days after the creation of its newest session, once it is absent from the answer.
- Running sessions are those of the current answer. One seen running that is in neither query
  of the next answer is looked up by the poll (it finished after leaving the window).
- UIDs are forgotten when created more than ``retention`` before the answer's own horizon (the
  newest creation time it holds, and never later than our clock), unless they are in the
  answer or were counted by this very poll; an answer without a readable entry forgets nothing.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from exporter.jobsessions.parse import Entry, JobSessionRecord
from exporter.jobsessions.plan import MAX_LOOKUP_ATTEMPTS
from exporter.parse import UnreadableEntry
from exporter.snapshot import DURATION_BUCKETS, HistogramView
from exporter.vocabulary import FAILED, RESULTS, SUCCESS

JobKey = tuple[str, str, str]  # backup_server, job_name, job_type
HistogramKey = tuple[str, str]  # backup_server, job_type
JOB_RETENTION_SECONDS: Final = 30 * 86400.0
# A UID is forgotten this long after the query window it came from: clock skew or a late answer
# can then never make a forgotten session reappear and be counted again.
UID_MARGIN_SECONDS: Final = 3 * 86400.0


def _newness(record: JobSessionRecord) -> tuple[float, float, str]:
    ended = record.ended if record.ended is not None else float("-inf")
    return (record.created, ended, record.uid)


def _finality(record: JobSessionRecord) -> tuple[bool, float]:
    return (record.finished, record.ended if record.ended is not None else float("-inf"))


def _newer(record: JobSessionRecord, than: JobSessionRecord | None) -> bool:
    # The same session seen again replaces itself: it may have finished since.
    return than is None or record.uid == than.uid or _newness(record) > _newness(than)


class PollAnswer:
    """The entries of one poll, gathered as they stream in (one record per UID).

    Within one query a UID seen twice is a duplicate (counted): the more final record is kept,
    then the later-ending. The same UID in both queries (a running session in the window) is
    simply the same session.
    """

    def __init__(self, allows: Callable[[str], bool]) -> None:
        self.allows = allows
        self.sessions: dict[str, JobSessionRecord] = {}
        self.duplicates = 0
        self.unreadable: dict[str, int] = {}
        # Every readable UID of the answer, whatever the filter says: never forgotten.
        self.seen: set[str] = set()
        self.newest_created: float | None = None
        self.forgotten: set[str] = set()  # looked up: the EM no longer has them
        self.failed_lookups: set[str] = set()
        self._query: set[str] = set()

    def begin_query(self) -> None:
        self._query = set()

    def add(self, entry: Entry) -> None:
        if isinstance(entry, UnreadableEntry):
            self.unreadable[entry.why] = self.unreadable.get(entry.why, 0) + 1
            return
        uid = entry.uid
        if uid in self._query:
            self.duplicates += 1
        self._query.add(uid)
        self.seen.add(uid)
        if self.newest_created is None or entry.created > self.newest_created:
            self.newest_created = entry.created
        if not self.allows(entry.job_type):
            return
        known = self.sessions.get(uid)
        if known is None or _finality(entry) > _finality(known):
            self.sessions[uid] = entry

    def add_all(self, entries: Iterable[Entry]) -> int:
        count = 0
        for entry in entries:
            self.add(entry)
            count += 1
        return count

    @property
    def readable(self) -> bool:
        return self.newest_created is not None


@dataclass(frozen=True)
class JobSummary:
    """What the gauges and counters say about one job."""

    finished: Mapping[tuple[str, bool], int]  # (result, retry) -> sessions counted
    last_start: float
    newest_finished: JobSessionRecord | None
    newest_success: JobSessionRecord | None
    newest_failure: JobSessionRecord | None
    running: int
    oldest_running_start: float | None
    running_progress: float | None  # of the newest running session


@dataclass(frozen=True)
class JobView:
    """The feed's state at one moment, for the collector; safe to read from any thread."""

    taken_at: float | None = None  # the last committed poll
    jobs: Mapping[JobKey, JobSummary] = field(default_factory=lambda: MappingProxyType({}))
    durations: Mapping[HistogramKey, HistogramView] = field(
        default_factory=lambda: MappingProxyType({})
    )
    sessions: int = 0  # distinct sessions in the last answer


EMPTY_VIEW: Final = JobView()


@dataclass(slots=True)
class _Job:
    finished: dict[tuple[str, bool], int]
    last_start: float = float("-inf")
    newest_created: float = float("-inf")
    newest_finished: JobSessionRecord | None = None
    newest_success: JobSessionRecord | None = None
    newest_failure: JobSessionRecord | None = None

    def observe(self, record: JobSessionRecord) -> None:
        self.last_start = max(self.last_start, record.created)
        self.newest_created = max(self.newest_created, record.created)
        if not record.finished:
            return
        if _newer(record, self.newest_finished):
            self.newest_finished = record
        if record.result == SUCCESS and _newer(record, self.newest_success):
            self.newest_success = record
        elif record.result == FAILED and _newer(record, self.newest_failure):
            self.newest_failure = record


@dataclass(slots=True)
class _Running:
    count: int = 0
    oldest: float = float("inf")
    newest: JobSessionRecord | None = None


class JobLedger:
    """Counts each finished job session once, ever, and keeps the state of every job.

    ``retention`` is how long after its creation a counted UID is remembered (the longest query
    window plus a margin). Used by one poller thread; readers get :meth:`view` copies.
    """

    def __init__(self, retention: float) -> None:
        self.retention = retention
        self._counted: dict[str, float] = {}  # UID -> creation time, for pruning
        self._running: dict[str, JobSessionRecord] = {}  # seen running at the last commit
        self._lookups: dict[str, int] = {}  # UID -> lookups that failed so far
        self._jobs: dict[JobKey, _Job] = {}
        self._buckets: dict[HistogramKey, list[int]] = {}
        self._sums: dict[HistogramKey, float] = {}
        self._baseline_taken = False
        self._committed = False
        self._allowed: Callable[[str], bool] = lambda _: True
        self._view = EMPTY_VIEW

    def __contains__(self, uid: object) -> bool:
        return uid in self._counted

    def __len__(self) -> int:
        return len(self._counted)

    @property
    def committed(self) -> bool:
        """Whether a poll was ever committed (the bootstrap window is only for the first)."""
        return self._committed

    def vanished(self, answer: PollAnswer) -> list[JobSessionRecord]:
        """The sessions running at the last commit that are in neither query of ``answer``,
        oldest first: each is looked up by id."""
        gone = [r for uid, r in self._running.items() if uid not in answer.seen]
        return sorted(gone, key=_newness)

    def view(self) -> JobView:
        return self._view

    def commit(self, answer: PollAnswer, *, now: float) -> JobView:
        """Fold one successful poll in and freeze the result."""
        self._committed = True
        baseline = answer.readable and not self._baseline_taken
        counted_now: set[str] = set()
        running: dict[JobKey, _Running] = {}
        for record in answer.sessions.values():
            key = record.job
            job = self._jobs.get(key)
            if job is None:
                job = self._jobs[key] = _Job(
                    finished={(r, b): 0 for r in RESULTS for b in (False, True)}
                )
                self._add_histogram((record.backup_server, record.job_type))
            job.observe(record)
            uid = record.uid
            if not record.finished:
                self._running[uid] = record
                acc = running.setdefault(key, _Running())
                acc.count += 1
                acc.oldest = min(acc.oldest, record.created)
                if acc.newest is None or _newness(record) > _newness(acc.newest):
                    acc.newest = record
                continue
            self._running.pop(uid, None)
            self._lookups.pop(uid, None)
            if uid in self._counted:
                continue
            self._counted[uid] = record.created
            counted_now.add(uid)
            if baseline or not self._allowed(record.job_type):
                continue
            tally = (record.result, record.retry)
            job.finished[tally] = job.finished.get(tally, 0) + 1
            duration = record.duration
            if duration is not None:
                hist = (record.backup_server, record.job_type)
                self._buckets[hist][bisect_left(DURATION_BUCKETS, duration)] += 1
                self._sums[hist] += duration
        for uid in answer.forgotten:
            self._running.pop(uid, None)
            self._lookups.pop(uid, None)
        for uid in answer.failed_lookups:
            attempts = self._lookups.get(uid, 0) + 1
            if attempts >= MAX_LOOKUP_ATTEMPTS:
                self._running.pop(uid, None)
                self._lookups.pop(uid, None)
            else:
                self._lookups[uid] = attempts
        for uid in [u for u in self._running if u in answer.seen and u not in answer.sessions]:
            del self._running[uid]  # now outside the job_types filter
        if answer.newest_created is not None:
            self._baseline_taken = True
            self._allowed = answer.allows
            self._prune(min(now, answer.newest_created) - self.retention, answer, counted_now)
        present = {record.job for record in answer.sessions.values()}
        self._drop_jobs(now - JOB_RETENTION_SECONDS, present)
        self._view = self._freeze(now, running, len(answer.sessions))
        return self._view

    def _add_histogram(self, key: HistogramKey) -> None:
        if key not in self._buckets:
            self._buckets[key] = [0] * (len(DURATION_BUCKETS) + 1)
            self._sums[key] = 0.0

    def _prune(self, horizon: float, answer: PollAnswer, counted_now: set[str]) -> None:
        keep = answer.seen
        stale = [
            uid
            for uid, created in self._counted.items()
            if created < horizon and uid not in keep and uid not in counted_now
        ]
        for uid in stale:
            del self._counted[uid]
        lost = [uid for uid, r in self._running.items() if r.created < horizon and uid not in keep]
        for uid in lost:
            del self._running[uid]
            self._lookups.pop(uid, None)

    def _drop_jobs(self, before: float, present: set[JobKey]) -> None:
        for key in [k for k, job in self._jobs.items() if job.newest_created < before]:
            if key not in present:
                del self._jobs[key]
        kept = {(server, kind) for server, _, kind in self._jobs}
        for hist in [h for h in self._buckets if h not in kept]:
            del self._buckets[hist]
            del self._sums[hist]

    def _freeze(self, now: float, running: Mapping[JobKey, _Running], sessions: int) -> JobView:
        jobs: dict[JobKey, JobSummary] = {}
        for key, job in self._jobs.items():
            run = running.get(key)
            jobs[key] = JobSummary(
                finished=MappingProxyType(dict(job.finished)),
                last_start=job.last_start,
                newest_finished=job.newest_finished,
                newest_success=job.newest_success,
                newest_failure=job.newest_failure,
                running=0 if run is None else run.count,
                oldest_running_start=None if run is None else run.oldest,
                running_progress=None if run is None or run.newest is None else run.newest.progress,
            )
        durations = {
            key: HistogramView(
                bucket_counts=tuple(buckets), total=self._sums[key], count=sum(buckets)
            )
            for key, buckets in self._buckets.items()
        }
        return JobView(
            taken_at=now,
            jobs=MappingProxyType(jobs),
            durations=MappingProxyType(durations),
            sessions=sessions,
        )
