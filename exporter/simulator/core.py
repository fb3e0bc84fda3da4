"""The simulated EM's state, shared by the HTTP side and the Python API."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from exporter.simulator.auth import LogonStore
from exporter.simulator.clock import SimClock, utc_now
from exporter.simulator.estate import (
    IMMEDIATE_COPY,
    NO_RESTORE_POINTS,
    SESSION_TYPES,
    JobSpec,
    build_estate,
)
from exporter.simulator.faults import FaultQueue
from exporter.simulator.job_model import FAILED, NONE, STOPPED, SUCCESS, SimJob, SimJobSession
from exporter.simulator.job_store import JobFixed, JobStore, fixed_view
from exporter.simulator.model import SUCCESS as SYSTEM_SUCCESS
from exporter.simulator.model import SimSession
from exporter.simulator.settings import SimulatorSettings, updated, validate
from exporter.simulator.stats import SimStats
from exporter.simulator.store import COLLECT_JOB, SessionStore
from exporter.simulator.timefmt import as_utc

# How long a collection asked for by hand runs, as its CollectJob system session shows.
_MANUAL_COLLECTION = timedelta(seconds=20)


class SimCore:
    def __init__(self, settings: SimulatorSettings, clock: Callable[[], datetime] | None) -> None:
        validate(settings)
        self._settings = replace(settings)
        self._settings_lock = threading.Lock()
        self.clock = SimClock(clock or utc_now, speed=settings.speed, live=settings.live)
        self.store = SessionStore(
            seed=settings.seed,
            backup_servers=settings.backup_servers,
            history_days=settings.history_days,
            start=self.clock.start,
            shown=self.clock.shown,
        )
        self.store.extras.set_count(settings.extra_session_types, self.clock.now())
        estate = build_estate(
            settings.seed, self.store.hosts, settings.jobs, settings.job_runs_per_day
        )
        self.jobs = JobStore(
            seed=settings.seed,
            estate=estate,
            history_start=self.store.history_start,
            start=self.clock.start,
            collection=self.store.last_collection,
            shown=self.clock.shown,
        )
        self.logons = LogonStore(self.clock.base_now, lambda: self.settings.token_idle_expiry)
        self.faults = FaultQueue()
        self.stats = SimStats(lambda: len(self.logons.active()))
        # Set on stop so that injected delays and latency end at once.
        self.stopping = threading.Event()
        self._fail_lock = threading.Lock()
        self._last_forced_failure = self.clock.now()

    @property
    def settings(self) -> SimulatorSettings:
        """The current settings; replaced as a whole on change, so a reference stays coherent."""
        return self._settings

    def set(self, knobs: dict[str, object]) -> SimulatorSettings:
        with self._settings_lock:
            new = updated(self._settings, knobs)
            if "speed" in knobs or "live" in knobs:
                self.clock.configure(speed=new.speed, live=new.live)
            if "extra_session_types" in knobs:
                self.store.extras.set_count(new.extra_session_types, self.clock.now())
            self._settings = new
            return new

    def sessions(self) -> list[SimSession]:
        s = self.settings
        self._fail_when_due()
        return self.store.snapshot(
            self.clock.schedule_now(), vocabulary=s.result_vocabulary, digits=s.fraction_digits
        )

    def fail_next(self) -> str | None:
        """Make the next generated session to finish fail; its id, or None if there is none."""
        return self.store.fail_next(self.clock.schedule_now())

    def _fail_when_due(self) -> None:
        # Checked when sessions are asked for, which is when a failure can be seen: so the
        # demo's headline alert has a failure to fire on every few minutes.
        every = self.settings.fail_every
        if every <= 0:
            return
        now = self.clock.now()
        with self._fail_lock:
            if (now - self._last_forced_failure).total_seconds() < every:
                return
            self._last_forced_failure = now
        self.fail_next()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.stopping.wait(seconds)

    def _view(self, session_id: str) -> SimSession:
        s = self.settings
        return self.store.describe(
            session_id,
            self.clock.schedule_now(),
            vocabulary=s.result_vocabulary,
            digits=s.fraction_digits,
        )

    def add_session(
        self,
        session_type: str,
        *,
        state: str,
        created: datetime | None,
        ended: datetime | None,
        result: str | None,
        message: str,
        canceled: bool,
    ) -> SimSession:
        if not session_type:
            raise ValueError("session_type is empty")
        session_id = self.store.add(
            session_type,
            self.clock.schedule_now(),
            state=state,
            created=created,
            ended=ended,
            result=result,
            message=message,
            canceled=canceled,
        )
        return self._view(session_id)

    def finish_session(
        self, session_id: str, *, state: str, ended: datetime | None, message: str, canceled: bool
    ) -> SimSession:
        self.store.finish(
            session_id,
            self.clock.schedule_now(),
            state=state,
            ended=ended,
            message=message,
            canceled=canceled,
        )
        return self._view(session_id)

    def remove_session(self, session_id: str) -> None:
        self.store.remove(session_id, self.clock.schedule_now())

    # backup job sessions

    def job_digits(self) -> int:
        """Fraction digits of job-session times: a v12 EM keeps them in SQL Server
        `datetime` columns, milliseconds at most (`...12:00:11.94Z`)."""
        s = self.settings
        return min(s.fraction_digits, 3) if s.em_version == "12" else s.fraction_digits

    def job_list(self) -> list[SimJob]:
        return [_public(job) for job in self.jobs.estate.jobs]

    def job_views(self, session_type: str, *, truth: bool = False) -> list[SimJobSession]:
        """Every session of the type the EM shows now (or the backup servers hold, with
        `truth`), in primary-key order, whatever their age."""
        s = self.settings
        return self.jobs.views(
            session_type,
            self.clock.schedule_now(),
            digits=self.job_digits(),
            em_version=s.em_version,
            immediate=truth or s.job_visibility == "immediate",
        )

    def job_session(
        self, session_type: str, session_id: str, *, truth: bool = False
    ) -> SimJobSession:
        """The session the EM shows with this id; KeyError if it shows none."""
        s = self.settings
        return self.jobs.find(
            session_type,
            session_id,
            self.clock.schedule_now(),
            digits=self.job_digits(),
            em_version=s.em_version,
            immediate=truth or s.job_visibility == "immediate",
        )

    def _truth(self, session_id: str) -> tuple[JobSpec, SimJobSession]:
        for session_type in SESSION_TYPES:
            try:
                view = self.job_session(session_type, session_id, truth=True)
            except KeyError:
                continue
            return self.jobs.estate.by_uid[view.job_uid], view
        raise KeyError(session_id)

    def add_job_session(
        self,
        job: str,
        *,
        state: str,
        result: str | None,
        created: datetime | None,
        ended: datetime | None,
        progress: int | None,
        is_retry: bool,
        job_name: str | None,
        job_type: str | None,
        session_id: str | None,
        parent_id: str | None,
        restore_points: int | None,
        failure_message: str | None,
    ) -> SimJobSession:
        spec = self.jobs.estate.find(job)
        stopped = state.casefold() == STOPPED.casefold()
        final = result if result is not None else (SUCCESS if stopped else NONE)
        data = JobFixed(
            id=(session_id or str(uuid.uuid4())).lower(),
            job=spec,
            created=as_utc(created) if created is not None else self.clock.now(),
            ended=as_utc(ended) if ended is not None else None,
            state=state,
            result=final,
            progress=progress if progress is not None else _progress(spec, stopped),
            is_retry=is_retry,
            parent_id=parent_id,
            restore_points=(
                restore_points if restore_points is not None else _points(spec, stopped, final)
            ),
            job_name=job_name if job_name is not None else spec.name,
            job_type=job_type if job_type is not None else spec.job_type,
            failure_message=failure_message,
        )
        self.jobs.add(data, self.clock.schedule_now())
        s = self.settings
        return fixed_view(data, self.job_digits(), s.em_version)

    def finish_job_session(
        self,
        session_id: str,
        *,
        result: str,
        state: str,
        ended: datetime | None,
        progress: int | None,
    ) -> SimJobSession:
        spec, view = self._truth(session_id)
        stopped = state.casefold() == STOPPED.casefold()
        data = JobFixed(
            id=view.id,
            job=spec,
            created=view.created,
            ended=as_utc(ended) if ended is not None else self.clock.now(),
            state=state,
            result=result,
            progress=progress if progress is not None else _progress(spec, stopped),
            is_retry=view.is_retry,
            parent_id=view.parent_id,
            restore_points=_points(spec, stopped, result),
            job_name=view.job_name,
            job_type=view.job_type,
            failure_message=view.failure_message,
        )
        self.jobs.change(session_id, self.clock.schedule_now(), data)
        s = self.settings
        return fixed_view(data, self.job_digits(), s.em_version)

    def remove_job_session(self, session_id: str) -> None:
        self._truth(session_id)
        self.jobs.change(session_id, self.clock.schedule_now(), None)

    def collect(self, backup_server: str | None = None) -> dict[str, datetime | None]:
        """A data collection now from one backup server or all: each gets a CollectJob
        system session ending now, and the EM shows its job sessions as they are now."""
        hosts = self.store.hosts
        if backup_server is not None:
            if backup_server not in hosts:
                raise ValueError(f"unknown backup server {backup_server!r}")
            hosts = [backup_server]
        now = self.clock.now()
        for _ in hosts:
            self.store.add(
                COLLECT_JOB,
                self.clock.schedule_now(),
                state=SYSTEM_SUCCESS,
                created=now - _MANUAL_COLLECTION,
                ended=now,
                result=None,
                message="",
                canceled=False,
            )
        self.jobs.collect(self.clock.schedule_now(), hosts)
        return self.job_collections()

    def job_collections(self) -> dict[str, datetime | None]:
        return self.jobs.collections(
            self.clock.schedule_now(), immediate=self.settings.job_visibility == "immediate"
        )


def _progress(job: JobSpec, stopped: bool) -> int:
    if job.job_type == IMMEDIATE_COPY:
        return 0
    return 100 if stopped else 0


def _points(job: JobSpec, stopped: bool, result: str) -> int:
    if not stopped or result == FAILED or job.job_type in NO_RESTORE_POINTS:
        return 0
    return len(job.objects)


def _public(job: JobSpec) -> SimJob:
    return SimJob(
        uid=job.uid,
        name=job.name,
        job_type=job.job_type,
        session_type=job.session_type,
        backup_server=job.server.name,
        backup_server_uid=job.server.uid,
        parent_uid=job.parent,
        objects=job.objects,
    )
