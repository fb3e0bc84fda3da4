"""The job sessions the backup servers hold, and what the EM has collected of them.

The backup servers' truth is the generated schedule plus what a test changed by hand. The
EM shows a backup server's sessions as they were at that server's last data collection: the
end of its last CollectJob that did not fail (the system-session schedule), or a collection
asked for by hand, whichever is later. So a session appears, finishes and updates its
progress only at collection ticks, and a failed collection freezes what the EM shows. With
visibility "immediate" every answer shows the truth of the moment instead.

Changes made by hand are ordered against collections by (schedule time, sequence number),
so on a frozen clock a change made after a collection waits for the next one.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from exporter.simulator.estate import IMMEDIATE_COPY, SESSION_TYPES, Estate, JobSpec
from exporter.simulator.job_history import JobRun, generate_job_day
from exporter.simulator.job_model import NONE, STOPPED, WORKING, SimJobSession
from exporter.simulator.order import primary_key
from exporter.simulator.timefmt import as_utc, truncate

# Generated sessions are forgotten once they are older than the longest query window
# (13 weeks, the EM's default event-history retention) plus a day.
FORGET_AFTER = timedelta(weeks=13, days=1)
_LAST = math.inf  # a scheduled collection comes after every hand-made change of its moment
_CACHED_VIEWS = 4


@dataclass(frozen=True, slots=True)
class Tick:
    """A data collection: when the schedule was at `schedule`, shown at `shown`."""

    schedule: datetime
    seq: float
    shown: datetime

    def after(self, schedule: datetime, seq: float) -> bool:
        return (schedule, seq) < (self.schedule, self.seq)


@dataclass(frozen=True, slots=True)
class JobFixed:
    """A session as set by hand: shown exactly as set (times are shown times)."""

    id: str
    job: JobSpec
    created: datetime
    ended: datetime | None
    state: str
    result: str
    progress: int
    is_retry: bool
    parent_id: str | None
    restore_points: int
    job_name: str
    job_type: str
    failure_message: str | None


@dataclass(slots=True)
class Edited:
    """A session changed by hand: its generated run (if any) and the versions set since,
    each with the moment it was set; None is a removal."""

    run: JobRun | None
    versions: list[tuple[datetime, float, JobFixed | None]]

    @property
    def job(self) -> JobSpec:
        if self.run is not None:
            return self.run.job
        data = next(v for _, _, v in self.versions if v is not None)
        return data.job


Entry = JobRun | Edited


def _same(moment: datetime) -> datetime:
    return moment


class JobStore:
    """Thread-safe; `now` arguments are schedule times (see exporter.simulator.clock)."""

    def __init__(
        self,
        *,
        seed: int,
        estate: Estate,
        history_start: datetime,
        start: datetime,
        collection: Callable[[str, datetime], datetime | None],
        shown: Callable[[datetime], datetime] = _same,
    ) -> None:
        self._seed = seed
        self.estate = estate
        self._shown = shown
        self._collection = collection
        self._history_start = as_utc(history_start)
        self._next_day = self._history_start.date()
        self._entries: dict[str, dict[str, Entry]] = {t: {} for t in SESSION_TYPES}
        self._manual: dict[str, Tick] = {}
        self._seq = 0
        self._changes = 0
        self._cache: dict[tuple[object, ...], list[SimJobSession]] = {}
        # A generated session, once finished, looks the same at every later collection: its
        # view is kept (per digits and version) so a new collection rebuilds only the rest.
        self._finished: dict[str, SimJobSession] = {}
        self._finished_format: tuple[int, str] | None = None
        self._lock = threading.Lock()
        with self._lock:
            self._advance(as_utc(start))

    # generation

    def _advance(self, now: datetime) -> None:
        if not self.estate.jobs:
            return
        while self._next_day <= now.date():
            for run in generate_job_day(self._seed, self.estate, self._next_day):
                if run.root >= self._history_start:
                    self._entries[run.job.session_type][run.id] = run
            self._next_day += timedelta(days=1)
            self._changes += 1
        forget_before = self._shown(now) - FORGET_AFTER
        for entries in self._entries.values():
            oldest = next(iter(entries.values()), None)
            if isinstance(oldest, JobRun) and self._shown(oldest.created) < forget_before:
                for key in [
                    k for k, e in entries.items() if _forgettable(e, forget_before, self._shown)
                ]:
                    del entries[key]
                    self._finished.pop(key, None)
                self._changes += 1

    # collections

    def _tick(self, host: str, now: datetime, immediate: bool) -> Tick | None:
        shown_now = self._shown(now)
        if immediate:
            return Tick(now, _LAST, shown_now)
        scheduled = self._collection(host, now)
        ticks = [t for t in (self._manual.get(host),) if t is not None]
        if scheduled is not None:
            ticks.append(Tick(scheduled, _LAST, self._shown(scheduled)))
        return max(ticks, key=lambda t: (t.schedule, t.seq), default=None)

    def collections(self, now: datetime, *, immediate: bool) -> dict[str, datetime | None]:
        """The shown time of each backup server's last collection."""
        with self._lock:
            self._advance(now)
            ticks = {s.name: self._tick(s.name, now, immediate) for s in self.estate.servers}
        return {host: None if t is None else t.shown for host, t in ticks.items()}

    def collect(self, now: datetime, hosts: Iterable[str]) -> None:
        """A data collection now (EM's "Collect now"), for the given backup servers."""
        with self._lock:
            self._advance(now)
            self._seq += 1
            for host in hosts:
                self._manual[host] = Tick(now, self._seq, self._shown(now))

    # what the EM shows

    def views(
        self,
        session_type: str,
        now: datetime,
        *,
        digits: int,
        em_version: str,
        immediate: bool,
    ) -> list[SimJobSession]:
        """Every session of the type the EM shows now, in primary-key order. Cached per
        collection state, so paging through a large answer costs one build."""
        with self._lock:
            self._advance(now)
            ticks = {s.name: self._tick(s.name, now, immediate) for s in self.estate.servers}
            cache_key = (
                session_type,
                tuple((h, t.schedule, t.seq) if t else None for h, t in ticks.items()),
                self._changes,
                digits,
                em_version,
            )
            cached = self._cache.get(cache_key)
            if cached is not None:
                return cached
            if self._finished_format != (digits, em_version):
                self._finished = {}
                self._finished_format = (digits, em_version)
            finished = self._finished
            out = []
            for key, entry in self._entries[session_type].items():
                tick = ticks.get(entry.job.server.name)
                if tick is None:
                    continue
                if isinstance(entry, JobRun) and entry.end <= tick.schedule:
                    view = finished.get(key)
                    if view is None:
                        view = self._planned_view(entry, tick, digits, em_version)
                        if view is not None:
                            finished[key] = view
                else:
                    view = self._view(entry, tick, digits, em_version)
                if view is not None:
                    out.append(view)
            pk = primary_key(em_version)
            out.sort(key=lambda s: pk(s.id))
            if len(self._cache) >= _CACHED_VIEWS:
                self._cache.pop(next(iter(self._cache)))
            self._cache[cache_key] = out
            return out

    def find(
        self,
        session_type: str,
        session_id: str,
        now: datetime,
        *,
        digits: int,
        em_version: str,
        immediate: bool,
    ) -> SimJobSession:
        """The session the EM shows with this id (the truth when `immediate`); KeyError
        when there is none."""
        with self._lock:
            self._advance(now)
            entry = self._entries[session_type].get(session_id.lower())
            if entry is None:
                raise KeyError(session_id)
            host = entry.job.server.name
            tick = self._tick(host, now, immediate)
            view = None if tick is None else self._view(entry, tick, digits, em_version)
        if view is None:
            raise KeyError(session_id)
        return view

    def _view(self, entry: Entry, tick: Tick, digits: int, em_version: str) -> SimJobSession | None:
        if isinstance(entry, Edited):
            for schedule, seq, data in reversed(entry.versions):
                if tick.after(schedule, seq):
                    return None if data is None else fixed_view(data, digits, em_version)
            if entry.run is None:
                return None
            return self._planned_view(entry.run, tick, digits, em_version)
        return self._planned_view(entry, tick, digits, em_version)

    def _planned_view(
        self, run: JobRun, tick: Tick, digits: int, em_version: str
    ) -> SimJobSession | None:
        if run.created > tick.schedule:
            return None
        job = run.job
        created = truncate(min(self._shown(run.created), tick.shown), digits)
        if tick.schedule < run.end:
            elapsed = (tick.schedule - run.created) / (run.end - run.created)
            progress = 0 if job.job_type == IMMEDIATE_COPY else min(99, int(elapsed * 100))
            state, result, ended, points = WORKING, NONE, None, 0
        else:
            # A finished immediate copy parent still says 0, as real ones do.
            progress = 0 if job.job_type == IMMEDIATE_COPY else 100
            state, result, points = STOPPED, run.result, run.restore_points
            ended = truncate(min(self._shown(run.end), tick.shown), digits)
        return SimJobSession(
            id=run.id,
            session_type=job.session_type,
            name=f"{job.name}@{name_stamp(created, em_version)}",
            job_uid=job.uid,
            job_name=job.name,
            job_type=job.job_type,
            backup_server=job.server.name,
            backup_server_uid=job.server.uid,
            created=created,
            ended=ended,
            state=state,
            result=result,
            progress=progress,
            is_retry=run.is_retry,
            parent_id=run.parent_id,
            restore_points=points,
            failure_message=None,
        )

    # changes by hand

    def add(self, data: JobFixed, now: datetime) -> None:
        with self._lock:
            self._advance(now)
            self._seq += 1
            self._changes += 1
            entries = self._entries[data.job.session_type]
            key, n = data.id, 1
            while key in entries:  # the same id twice: a duplicate UID in every answer
                n += 1
                key = f"{data.id}#{n}"
            entries[key] = Edited(None, [(now, self._seq, data)])

    def change(self, session_id: str, now: datetime, data: JobFixed | None) -> None:
        """Set a new version of a session (None removes it); KeyError if there is none."""
        with self._lock:
            self._advance(now)
            for entries in self._entries.values():
                entry = entries.get(session_id.lower())
                if entry is not None:
                    break
            else:
                raise KeyError(session_id)
            self._seq += 1
            self._changes += 1
            if isinstance(entry, JobRun):
                entry = Edited(entry, [])
                entries[session_id.lower()] = entry
                self._finished.pop(session_id.lower(), None)
            entry.versions.append((now, self._seq, data))


def name_stamp(created: datetime, em_version: str) -> str:
    """The creation time in a job session's name: seconds (v12), or the stored fraction
    with trailing zeros trimmed (v13)."""
    text = created.isoformat(sep=" ", timespec="microseconds")[:26]
    if em_version == "12":
        return text[:19]
    return text.rstrip("0").rstrip(".")


def fixed_view(data: JobFixed, digits: int, em_version: str) -> SimJobSession:
    created = truncate(data.created, digits)
    return SimJobSession(
        id=data.id,
        session_type=data.job.session_type,
        name=f"{data.job_name}@{name_stamp(created, em_version)}",
        job_uid=data.job.uid,
        job_name=data.job_name,
        job_type=data.job_type,
        backup_server=data.job.server.name,
        backup_server_uid=data.job.server.uid,
        created=created,
        ended=truncate(data.ended, digits) if data.ended is not None else None,
        state=data.state,
        result=data.result,
        progress=data.progress,
        is_retry=data.is_retry,
        parent_id=data.parent_id,
        restore_points=data.restore_points,
        failure_message=data.failure_message,
    )


def _forgettable(entry: Entry, before: datetime, shown: Callable[[datetime], datetime]) -> bool:
    return isinstance(entry, JobRun) and shown(entry.created) < before
