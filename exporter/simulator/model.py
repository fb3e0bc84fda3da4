"""The simulator's own records of system sessions, in its own words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

IN_PROGRESS = "InProgress"
SUCCESS = "CompletedSuccessfully"
WARNING = "CompletedWarning"
FAILED = "Failed"
KNOWN_STATES = (IN_PROGRESS, SUCCESS, WARNING, FAILED)

_SHORT_RESULTS = {SUCCESS: "Success", WARNING: "Warning", FAILED: "Failed", IN_PROGRESS: "None"}


@dataclass(frozen=True, slots=True)
class SimSession:
    """One system session exactly as /api/systemSessions would show it right now."""

    id: str
    session_type: str
    name: str
    created: datetime
    ended: datetime | None
    state: str
    result: str
    message: str
    canceled: bool


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One line of a session's log (/api/systemSessions/{id}/events)."""

    created: datetime
    message: str
    order: int


def result_for(state: str, vocabulary: str) -> str:
    """`Result/Result` for a state: a mirror of it, or the Success/Warning/Failed words.

    The short vocabulary has no word for a running session; job sessions say `None` there.
    """
    if vocabulary == "short":
        return _SHORT_RESULTS.get(state, state)
    return state
