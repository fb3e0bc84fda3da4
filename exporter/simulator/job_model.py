"""The simulator's records of backup jobs and their sessions, as the EM shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# BackupJobSession State and Result values. Running sessions say Working and None; the
# other states are only ever shown when a test sets them.
STOPPED = "Stopped"
WORKING = "Working"
STATES = ("Starting", "Stopping", WORKING, "Pausing", "Resuming", STOPPED)
# VBR's own states beyond the documented six; accepted in filters, never generated.
EXTRA_STATES = (
    "ActionRequired",
    "Idle",
    "Pending",
    "Postprocessing",
    "WaitingRepository",
    "WaitingSlot",
    "WaitingTape",
)
NONE = "None"
SUCCESS = "Success"
WARNING = "Warning"
FAILED = "Failed"
# In VBR's order: None (-1) before Success (0) < Warning (1) < Failed (2).
RESULTS = (NONE, SUCCESS, WARNING, FAILED)

# Task session states and results.
TASK_PENDING = "Pending"
TASK_IN_PROGRESS = "InProgress"
TASK_COMPLETED = "Completed"
TASK_STATES = (TASK_IN_PROGRESS, TASK_PENDING, TASK_COMPLETED)


def worst(results: list[str]) -> str:
    """The overall result of a family: Failed beats Warning beats Success."""
    if FAILED in results:
        return FAILED
    if WARNING in results:
        return WARNING
    return SUCCESS


@dataclass(frozen=True, slots=True)
class SimJob:
    """One job of the estate (child jobs of copy and agent families included)."""

    uid: str  # bare GUID; sessions say urn:veeam:Job:<uid>
    name: str
    job_type: str
    session_type: str  # BackupJobSession or ReplicaJobSession
    backup_server: str
    backup_server_uid: str
    parent_uid: str | None
    objects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SimJobSession:
    """One backup (or replica) job session exactly as the EM shows it now.

    Times are aware UTC, truncated to `fraction_digits`, so they equal what a client parses.
    """

    id: str  # bare GUID
    session_type: str  # BackupJobSession or ReplicaJobSession
    name: str
    job_uid: str  # bare GUID
    job_name: str
    job_type: str
    backup_server: str
    backup_server_uid: str
    created: datetime
    ended: datetime | None
    state: str
    result: str
    progress: int
    is_retry: bool
    parent_id: str | None  # the parent session of an AgentManagement child
    restore_points: int
    failure_message: str | None

    @property
    def uid(self) -> str:
        return f"urn:veeam:{self.session_type}:{self.id}"

    @property
    def finished(self) -> bool:
        return self.state.casefold() == STOPPED.casefold()


@dataclass(frozen=True, slots=True)
class SimTaskSession:
    """One task session (one protected object of one job session)."""

    id: str
    session: SimJobSession
    name: str
    vm_name: str
    vm_uid: str
    created: datetime
    ended: datetime | None
    state: str
    result: str
    reason: str
    total_size: int
