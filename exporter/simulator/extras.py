"""Extra session types: many distinct SessionType values, to try a client's cap on them.

Each extra type has one finished session. Its UID comes from the seed and the type's number,
so an answer repeated, or the setting raised, never makes a new session of a type that was
already shown. The views are built once per (count, vocabulary, digits), so ten thousand
extra types cost an answer their rendering only.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

from exporter.simulator.model import FAILED, SUCCESS, SimSession, result_for
from exporter.simulator.records import Fixed
from exporter.simulator.timefmt import as_utc, name_stamp, truncate

MAX_EXTRA_SESSION_TYPES = 100_000
# "Sim..." sorts between the real SecurityScopesRebuild and SyncCheckForProductUpdatesOption,
# so a cap that keeps the first types in sorted order keeps some real types and drops others.
TYPE_PREFIX = "SimExtraType"
_NAMESPACE = uuid.UUID("5f0c3a52-8d3e-4f7b-9a61-2c7e1b0d4e93")
# Every extra session finished within this long before the types were switched on.
_SPREAD_SECONDS = 3600
FAILED_EVERY = 10  # one extra type in ten failed its session, the others succeeded


def type_name(number: int) -> str:
    """The extra type with this number, from 1: zero-padded so names sort by number."""
    return f"{TYPE_PREFIX}{number:06d}"


def _record(seed: int, number: int, anchor: datetime) -> Fixed:
    session_type = type_name(number)
    created = anchor - timedelta(seconds=60 + number % _SPREAD_SECONDS, microseconds=number)
    return Fixed(
        id=str(uuid.uuid5(_NAMESPACE, f"{seed}:{number}")),
        session_type=session_type,
        name=f"{session_type} @{name_stamp(created)}",
        created=created,
        ended=created + timedelta(seconds=2 + number % 50),
        state=FAILED if number % FAILED_EVERY == 0 else SUCCESS,
        result=None,
        message="",
        canceled=False,
        host=None,
    )


class ExtraTypes:
    """Thread-safe; the records of the extra types currently switched on."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._anchor: datetime | None = None
        self._records: dict[str, Fixed] = {}
        self._by_number: list[Fixed] = []
        self._views: tuple[tuple[int, str, int], list[SimSession]] | None = None
        self._lock = threading.Lock()

    def set_count(self, count: int, now: datetime) -> None:
        """Switch on `count` extra types; those already on keep their UIDs and times."""
        with self._lock:
            if count == 0:
                self._anchor = None
                self._by_number = []
            else:
                if self._anchor is None:
                    self._anchor = as_utc(now)
                anchor = self._anchor
                start = len(self._by_number)
                self._by_number = self._by_number[:count] + [
                    _record(self._seed, n, anchor) for n in range(start + 1, count + 1)
                ]
            self._records = {r.id: r for r in self._by_number}
            self._views = None

    def find(self, session_id: str) -> Fixed | None:
        with self._lock:
            return self._records.get(session_id.lower())

    def views(self, horizon: datetime, *, vocabulary: str, digits: int) -> list[SimSession]:
        """The sessions as an answer shows them, sorted by id; none older than `horizon`."""
        with self._lock:
            key = (len(self._by_number), vocabulary, digits)
            if self._views is None or self._views[0] != key:
                built = [_view(r, vocabulary, digits) for r in self._by_number]
                built.sort(key=lambda s: s.id)
                self._views = (key, built)
            cached = self._views[1]
            anchor = self._anchor
        # All were created within the spread before the anchor: usually all or none are in.
        if anchor is None or anchor - timedelta(seconds=_SPREAD_SECONDS + 120) >= horizon:
            return cached
        return [s for s in cached if s.created >= horizon]


def _view(record: Fixed, vocabulary: str, digits: int) -> SimSession:
    assert record.ended is not None  # every extra session is finished
    return SimSession(
        id=record.id,
        session_type=record.session_type,
        name=record.name,
        created=truncate(record.created, digits),
        ended=truncate(record.ended, digits),
        state=record.state,
        result=result_for(record.state, vocabulary),
        message=record.message,
        canceled=record.canceled,
    )
