"""All sessions the simulated EM knows, and what they look like at a given moment."""

from __future__ import annotations

import heapq
import threading
import uuid
from datetime import datetime, timedelta

from exporter.simulator.catalog import display_name
from exporter.simulator.events import events_of
from exporter.simulator.extras import ExtraTypes
from exporter.simulator.history import backup_server_names, generate_day
from exporter.simulator.model import IN_PROGRESS, SimEvent, SimSession, result_for
from exporter.simulator.records import Fixed, Planned, Record
from exporter.simulator.settings import WINDOW_DAYS
from exporter.simulator.timefmt import as_utc, name_stamp, truncate

WINDOW = timedelta(days=WINDOW_DAYS)
# Records are forgotten a day after they leave the window, so a test clock that steps back
# a little still finds them.
_FORGET_AFTER = WINDOW + timedelta(days=1)


class SessionStore:
    """Thread-safe; generated days are added lazily as simulated time reaches them."""

    def __init__(self, *, seed: int, backup_servers: int, history_days: float, start: datetime):
        self._seed = seed
        self._hosts = backup_server_names(backup_servers)
        self._history_start = as_utc(start) - timedelta(days=history_days)
        self._next_day = self._history_start.date()
        self._records: dict[str, Record] = {}
        self._lock = threading.Lock()
        self.extras = ExtraTypes(seed)
        with self._lock:
            self._advance(as_utc(start))

    @property
    def hosts(self) -> list[str]:
        return list(self._hosts)

    def _advance(self, now: datetime) -> None:
        while self._next_day <= now.date():
            for planned in generate_day(self._seed, self._hosts, self._next_day):
                if planned.created >= self._history_start:
                    self._records[planned.id] = planned
            self._next_day += timedelta(days=1)
        forget_before = now - _FORGET_AFTER
        if any(r.created < forget_before for r in self._oldest_few()):
            self._records = {k: r for k, r in self._records.items() if r.created >= forget_before}

    def _oldest_few(self) -> list[Record]:
        # Generated days arrive in order, so the first records are the oldest ones.
        out = []
        for record in self._records.values():
            out.append(record)
            if len(out) >= 8:
                break
        return out

    def snapshot(self, now: datetime, *, vocabulary: str, digits: int) -> list[SimSession]:
        """Visible sessions in answer order (by id, as Veeam's own example is ordered)."""
        with self._lock:
            self._advance(now)
            horizon = now - WINDOW
            out = []
            for record in self._records.values():
                if record.created < horizon:
                    continue
                view = _view(record, now, vocabulary, digits)
                if view is not None:
                    out.append(view)
        out.sort(key=lambda s: s.id)
        extra = self.extras.views(horizon, vocabulary=vocabulary, digits=digits)
        if not extra:
            return out
        return list(heapq.merge(out, extra, key=lambda s: s.id))

    def get(self, session_id: str, now: datetime, *, vocabulary: str, digits: int) -> SimSession:
        with self._lock:
            record = self._visible(session_id, now, extras=True)
            view = _view(record, now, vocabulary, digits)
        assert view is not None  # _visible only returns visible records
        return view

    def describe(
        self, session_id: str, now: datetime, *, vocabulary: str, digits: int
    ) -> SimSession:
        """The record as it would be shown now, even if it is outside the window."""
        with self._lock:
            record = self._records.get(session_id) or self.extras.find(session_id)
        if record is None:
            raise KeyError(session_id)
        view = _view(record, now, vocabulary, digits)
        if view is None:
            raise KeyError(session_id)
        return view

    def events(self, session_id: str, now: datetime, *, digits: int) -> list[SimEvent]:
        with self._lock:
            record = self._visible(session_id, now, extras=True)
        return [
            SimEvent(truncate(e.created, digits), e.message, e.order)
            for e in events_of(record, now)
        ]

    def _visible(self, session_id: str, now: datetime, *, extras: bool = False) -> Record:
        """The record, or KeyError if the API would not show it now.

        The extra types' sessions are only read: finishing or removing one is refused.
        """
        self._advance(now)
        record = self._records.get(session_id.lower())
        if record is None and extras:
            record = self.extras.find(session_id)
        if record is None or record.created < now - WINDOW:
            raise KeyError(session_id)
        if isinstance(record, Planned) and record.created > now:
            raise KeyError(session_id)
        return record

    def add(
        self,
        session_type: str,
        now: datetime,
        *,
        state: str,
        created: datetime | None,
        ended: datetime | None,
        result: str | None,
        message: str,
        canceled: bool,
    ) -> str:
        created_at = as_utc(created) if created is not None else now
        record = Fixed(
            id=str(uuid.uuid4()),
            session_type=session_type,
            name=f"{display_name(session_type)} @{name_stamp(created_at)}",
            created=created_at,
            ended=as_utc(ended) if ended is not None else None,
            state=state,
            result=result,
            message=message,
            canceled=canceled,
            host=None,
        )
        with self._lock:
            self._advance(now)
            self._records[record.id] = record
        return record.id

    def finish(
        self,
        session_id: str,
        now: datetime,
        *,
        state: str,
        ended: datetime | None,
        message: str,
        canceled: bool,
    ) -> str:
        with self._lock:
            record = self._visible(session_id, now)
            self._records[record.id] = Fixed(
                id=record.id,
                session_type=record.session_type,
                name=record.name,
                created=record.created,
                ended=as_utc(ended) if ended is not None else now,
                state=state,
                result=None,
                message=message,
                canceled=canceled,
                host=record.host,
            )
        return record.id

    def remove(self, session_id: str, now: datetime) -> None:
        with self._lock:
            record = self._visible(session_id, now)
            del self._records[record.id]


def _view(record: Record, now: datetime, vocabulary: str, digits: int) -> SimSession | None:
    if isinstance(record, Fixed):
        state, ended, message, canceled = (
            record.state,
            record.ended,
            record.message,
            record.canceled,
        )
        result = record.result if record.result is not None else result_for(state, vocabulary)
    elif record.created > now:
        return None
    elif now < record.end:
        state, ended, message, canceled = IN_PROGRESS, None, "", False
        result = result_for(IN_PROGRESS, vocabulary)
    else:
        state, ended, message, canceled = record.state, record.end, record.message, record.canceled
        result = result_for(state, vocabulary)
    return SimSession(
        id=record.id,
        session_type=record.session_type,
        name=record.name,
        created=truncate(record.created, digits),
        ended=truncate(ended, digits) if ended is not None else None,
        state=state,
        result=result,
        message=message,
        canceled=canceled,
    )
