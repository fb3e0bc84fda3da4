"""Task sessions: one per protected object of a job session, derived from the session.

A running session has its first objects done, one in progress and the rest pending, in
proportion to its progress; a finished one has all of them completed. A failed session has
at least one failed task carrying the reason, which is where the EM keeps "why did the job
fail" (the job session's own FailureMessage stays empty).
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from exporter.simulator.estate import CONTAINER_TYPES, JobSpec
from exporter.simulator.job_model import (
    FAILED,
    NONE,
    SUCCESS,
    TASK_COMPLETED,
    TASK_IN_PROGRESS,
    TASK_PENDING,
    WARNING,
    SimJobSession,
    SimTaskSession,
)
from exporter.simulator.timefmt import truncate

_NAMESPACE = uuid.UUID("0b9e7c41-6d2a-4f85-8e3b-5a1c9d7f2e64")
_FAILURES = (
    "Processing {vm} Error: An error occurred while quiescing the virtual machine. "
    "Failed to create VM snapshot.",
    "Error: There is not enough space on the disk. Failed to write data to the file "
    "[E:\\Backups\\{job}\\{vm}.vbk].",
    "Processing {vm} Error: Unable to connect to the host: The operation has timed out.",
)
_WARNINGS = (
    "Processing {vm} Warning: Changed block tracking cannot be enabled: the virtual machine "
    "has snapshots.",
    "Processing {vm} Warning: Failed to truncate transaction logs.",
)
GIB = 1024**3


def task_id(session_id: str, index: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{session_id}:{index}"))


def tasks_of(
    session: SimJobSession, job: JobSpec | None, now: datetime, digits: int
) -> list[SimTaskSession]:
    """The session's task sessions; none is dated after `now`."""
    if job is None or job.job_type in CONTAINER_TYPES or not job.objects:
        return []
    rng = random.Random(session.id)
    objects = job.objects
    count = len(objects)
    failed = (
        set(rng.sample(range(count), max(1, count // 3))) if session.result == FAILED else set()
    )
    warned = {count - 1} if session.result == WARNING else set()
    done = count if session.ended is not None else session.progress * count // 100
    span = (session.ended - session.created) if session.ended is not None else timedelta(0)
    # Nothing of a task is dated after its session's end, or after now while it runs.
    bound = min(session.ended, now) if session.ended is not None else now
    out = []
    for index, vm in enumerate(objects):
        created = min(session.created + timedelta(seconds=2 + index * 3 + rng.uniform(0, 2)), bound)
        size = GIB * rng.choice((40, 60, 80, 100, 200, 500))
        ended: datetime | None = None
        if index < done:
            state = TASK_COMPLETED
            if index in failed:
                result = FAILED
                reason = rng.choice(_FAILURES).format(vm=vm, job=job.name)
            elif index in warned:
                result = WARNING
                reason = rng.choice(_WARNINGS).format(vm=vm)
            else:
                result, reason = SUCCESS, ""
            if session.ended is not None:
                ended = max(created, session.ended - span * rng.uniform(0.0, 0.1))
            else:
                ended = min(created + timedelta(seconds=rng.uniform(30, 300)), bound)
        else:
            state = TASK_IN_PROGRESS if index == done else TASK_PENDING
            result, reason = NONE, ""
            if state == TASK_PENDING:
                created = session.created
        created = truncate(created, digits)
        out.append(
            SimTaskSession(
                id=task_id(session.id, index),
                session=session,
                name=f"{vm}@{created.isoformat(sep=' ', timespec='seconds')[:19]}",
                vm_name=vm,
                vm_uid=f"urn:VMware:Vm:{task_id(job.uid, index)}.vm-{1000 + index}",
                created=created,
                ended=truncate(ended, digits) if ended is not None else None,
                state=state,
                result=result,
                reason=reason,
                total_size=0 if result == FAILED else size,
            )
        )
    return out
