"""Internal session records: scheduled ones follow the clock, fixed ones say what they say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Planned:
    """A generated session: running from `created` to `end`, then `state`."""

    id: str
    session_type: str
    name: str
    created: datetime
    end: datetime
    state: str
    message: str
    canceled: bool
    host: str | None


@dataclass(frozen=True, slots=True)
class Fixed:
    """A session added or finished by hand: shown exactly as set, whatever the clock says."""

    id: str
    session_type: str
    name: str
    created: datetime
    ended: datetime | None
    state: str
    result: str | None  # None: derived from state in the current result vocabulary
    message: str
    canceled: bool
    host: str | None


Record = Planned | Fixed
