"""Deterministic job runs, one UTC day at a time: retries, copy and agent families.

Every (job, day) has its own random stream derived from the seed, so a day's sessions are the
same whenever the day is generated. A run that fails is retried after the job's retry wait,
up to its retry count; each retry is a session of its own with IsRetry true. An agent job
runs one parent session and a child session per machine (a retry reruns the failed machines
only); an immediate copy job runs one long parent session per scheduled start and a worker
session after each run of a copied job that ends inside it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from exporter.simulator.estate import (
    AGENT_BACKUP,
    IMMEDIATE_COPY,
    NO_RESTORE_POINTS,
    Estate,
    JobSpec,
)
from exporter.simulator.history import guid_from_bits
from exporter.simulator.job_model import FAILED, SUCCESS, WARNING, worst


@dataclass(frozen=True, slots=True)
class JobRun:
    """A generated session: running from `created` to `end` (schedule times), then `result`."""

    id: str
    job: JobSpec
    created: datetime
    end: datetime
    result: str
    is_retry: bool
    parent_id: str | None
    restore_points: int
    # The scheduled start of the run it belongs to (first attempt, family parent): history
    # keeps whole runs, so it never begins with a lone retry or a worker without a parent.
    root: datetime


def generate_job_day(seed: int, estate: Estate, day: date) -> list[JobRun]:
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    by_job: dict[str, list[JobRun]] = {}
    out: list[JobRun] = []
    scheduled = [job for job in estate.jobs if job.starts is not None]
    # Immediate copies follow their sources' runs of the day, so they come last.
    scheduled.sort(key=lambda job: job.job_type == IMMEDIATE_COPY)
    for job in scheduled:
        rng = random.Random(f"{seed}|job|{job.uid}|{day.isoformat()}")
        assert job.starts is not None
        starts = job.starts(rng, midnight)
        if job.job_type == AGENT_BACKUP:
            runs = _agent_runs(job, estate, rng, starts)
        elif job.job_type == IMMEDIATE_COPY:
            runs = _copy_runs(job, estate, rng, starts, by_job)
        else:
            runs = _plain_runs(job, rng, starts)
        by_job[job.uid] = runs
        out.extend(runs)
    out.sort(key=lambda run: run.created)
    return out


def _guid(rng: random.Random) -> str:
    return guid_from_bits(rng.getrandbits(128))


def _roll(rng: random.Random, p_failure: float, p_warning: float) -> str:
    roll = rng.random()
    if roll < p_failure:
        return FAILED
    if roll < p_failure + p_warning:
        return WARNING
    return SUCCESS


def _points(job: JobSpec, result: str) -> int:
    """Restore points a session creates: one per object unless it failed."""
    if result == FAILED or job.job_type in NO_RESTORE_POINTS:
        return 0
    return len(job.objects)


def _plain_runs(job: JobSpec, rng: random.Random, starts: list[datetime]) -> list[JobRun]:
    out = []
    for start in starts:
        at = start
        for attempt in range(job.retries + 1):
            retry = attempt > 0
            seconds = job.duration(rng) * (rng.uniform(0.3, 0.6) if retry else 1.0)
            p_failure = job.p_retry_failure if retry else job.p_failure
            result = _roll(rng, p_failure, job.p_warning)
            end = at + timedelta(seconds=seconds)
            out.append(
                JobRun(_guid(rng), job, at, end, result, retry, None, _points(job, result), start)
            )
            if result != FAILED:
                break
            at = end + timedelta(seconds=job.retry_wait_seconds + rng.uniform(0, 30))
    return out


def _agent_runs(
    job: JobSpec, estate: Estate, rng: random.Random, starts: list[datetime]
) -> list[JobRun]:
    machines = [estate.by_uid[uid] for uid in job.children]
    out = []
    for start in starts:
        at = start
        pending = machines
        for attempt in range(job.retries + 1):
            retry = attempt > 0
            parent_id = _guid(rng)
            children = []
            for machine in pending:
                created = at + timedelta(seconds=rng.uniform(10, 40))
                seconds = machine.duration(rng) * (rng.uniform(0.3, 0.6) if retry else 1.0)
                p_failure = job.p_retry_failure if retry else machine.p_failure
                result = _roll(rng, p_failure, machine.p_warning)
                end = created + timedelta(seconds=seconds)
                points = _points(machine, result)
                children.append(
                    JobRun(
                        _guid(rng), machine, created, end, result, retry, parent_id, points, start
                    )
                )
            end = max(c.end for c in children) + timedelta(seconds=rng.uniform(5, 30))
            result = worst([c.result for c in children])
            out.append(JobRun(parent_id, job, at, end, result, retry, None, 0, start))
            out.extend(children)
            pending = [c.job for c in children if c.result == FAILED]
            if not pending:
                break
            at = end + timedelta(seconds=job.retry_wait_seconds + rng.uniform(0, 30))
    return out


def _copy_runs(
    job: JobSpec,
    estate: Estate,
    rng: random.Random,
    starts: list[datetime],
    by_job: dict[str, list[JobRun]],
) -> list[JobRun]:
    # The n-th child is the worker of the n-th source.
    worker_of = {
        src: estate.by_uid[uid] for src, uid in zip(job.sources, job.children, strict=True)
    }
    source_runs = sorted(
        (run for uid in job.sources for run in by_job.get(uid, []) if run.result != FAILED),
        key=lambda run: run.end,
    )
    out = []
    for start in starts:
        span_end = start + timedelta(seconds=job.duration(rng))
        children = []
        for source in source_runs:
            if not start <= source.end < span_end - timedelta(minutes=5):
                continue
            worker = worker_of[source.job.uid]
            created = source.end + timedelta(seconds=rng.uniform(60, 240))
            copy_seconds = (source.end - source.created).total_seconds() * rng.uniform(0.2, 0.5)
            end = min(created + timedelta(seconds=max(30.0, copy_seconds)), span_end)
            result = _roll(rng, worker.p_failure, worker.p_warning)
            points = _points(worker, result)
            children.append(
                JobRun(_guid(rng), worker, created, end, result, False, None, points, start)
            )
        # Workers carry no parent link (real answers show none); they run inside the parent.
        end = max([span_end, *(c.end + timedelta(seconds=30) for c in children)])
        result = worst([c.result for c in children])
        out.append(JobRun(_guid(rng), job, start, end, result, False, None, 0, start))
        out.extend(children)
    return out
