"""All sessions the simulated EM knows, and what they look like at a given moment."""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import random
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from exporter.simulator.catalog import KINDS_BY_TYPE, display_name
from exporter.simulator.events import events_of
from exporter.simulator.extras import ExtraTypes
from exporter.simulator.history import backup_server_names, generate_day
from exporter.simulator.model import FAILED, IN_PROGRESS, SimEvent, SimSession, result_for
from exporter.simulator.records import Fixed, Planned, Record
from exporter.simulator.settings import WINDOW_DAYS
from exporter.simulator.timefmt import as_utc, name_stamp, truncate

WINDOW = timedelta(days=WINDOW_DAYS)
# Records are forgotten a day after they leave the window, so a test clock that steps back
# a little still finds them.
_FORGET_AFTER = WINDOW + timedelta(days=1)
# The session type whose runs are the EM's data collections from a backup server.
COLLECT_JOB = "CollectJob"


def _same(moment: datetime) -> datetime:
    return moment


class SessionStore:
    """Thread-safe; generated days are added lazily as the schedule reaches them.

    Every `now` given is schedule time (see exporter.simulator.clock). Generated records keep
    schedule times and are shown through `shown`; records added or finished by hand hold
    shown times, as they are shown exactly as set. The window is judged on shown times.
    """

    def __init__(
        self,
        *,
        seed: int,
        backup_servers: int,
        history_days: float,
        start: datetime,
        shown: Callable[[datetime], datetime] = _same,
    ):
        self._seed = seed
        self._shown = shown
        self._hosts = backup_server_names(backup_servers)
        self._history_start = as_utc(start) - timedelta(days=history_days)
        self._next_day = self._history_start.date()
        self._records: dict[str, Record] = {}
        # Per backup server, the end of every generated CollectJob that did not fail (sorted,
        # schedule times): the moments the EM's job-session data was refreshed.
        self._collections: dict[str, list[datetime]] = {host: [] for host in self._hosts}
        self._lock = threading.Lock()
        self.extras = ExtraTypes(seed)
        with self._lock:
            self._advance(as_utc(start))

    @property
    def hosts(self) -> list[str]:
        return list(self._hosts)

    @property
    def history_start(self) -> datetime:
        return self._history_start

    def last_collection(self, host: str, now: datetime) -> datetime | None:
        """The end of the host's last generated CollectJob before `now` that did not fail
        (schedule time), or None."""
        with self._lock:
            self._advance(now)
            ends = self._collections.get(host, [])
            index = bisect.bisect_right(ends, now)
            return ends[index - 1] if index else None

    def _advance(self, now: datetime) -> None:
        self._generate(now)
        forget_before = self._shown(now) - _FORGET_AFTER
        if any(self._created(r) < forget_before for r in self._oldest_few()):
            self._records = {
                k: r for k, r in self._records.items() if self._created(r) >= forget_before
            }
            # A schedule time is never earlier than its shown time, so this keeps every end
            # still shown inside the kept days.
            for ends in self._collections.values():
                del ends[: bisect.bisect_left(ends, forget_before)]

    def _generate(self, until: datetime) -> None:
        while self._next_day <= until.date():
            for planned in generate_day(self._seed, self._hosts, self._next_day):
                if planned.created >= self._history_start:
                    self._records[planned.id] = planned
                    if _is_collection(planned):
                        assert planned.host is not None
                        bisect.insort(self._collections[planned.host], planned.end)
            self._next_day += timedelta(days=1)

    def _created(self, record: Record) -> datetime:
        """When the record was created on the shown clock."""
        return self._shown(record.created) if isinstance(record, Planned) else record.created

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
            shown_now = self._shown(now)
            horizon = shown_now - WINDOW
            out = []
            for record in self._records.values():
                if self._created(record) < horizon:
                    continue
                view = self._view(record, now, shown_now, vocabulary, digits)
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
            view = self._view(record, now, self._shown(now), vocabulary, digits)
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
        view = self._view(record, now, self._shown(now), vocabulary, digits)
        if view is None:
            raise KeyError(session_id)
        return view

    def events(self, session_id: str, now: datetime, *, digits: int) -> list[SimEvent]:
        with self._lock:
            record = self._visible(session_id, now, extras=True)
        if isinstance(record, Fixed):
            return [
                SimEvent(truncate(e.created, digits), e.message, e.order)
                for e in events_of(record, now)
            ]
        shown_now = self._shown(now)
        return [
            SimEvent(truncate(min(self._shown(e.created), shown_now), digits), e.message, e.order)
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
        if record is None or self._created(record) < self._shown(now) - WINDOW:
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
        created_at = as_utc(created) if created is not None else self._shown(now)
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
            created = self._created(record)
            self._records[record.id] = Fixed(
                id=record.id,
                session_type=record.session_type,
                name=record.name if created == record.created else _renamed(record, created),
                created=created,
                ended=as_utc(ended) if ended is not None else self._shown(now),
                state=state,
                result=None,
                message=message,
                canceled=canceled,
                host=record.host,
            )
        return record.id

    def fail_next(self, now: datetime) -> str | None:
        """Make the generated session that finishes next after `now` fail; its id, or None
        when the schedule has none within a day."""
        with self._lock:
            # The next one to finish may be on a day the schedule has not reached yet.
            self._generate(now + timedelta(days=1))
            pending = [r for r in self._records.values() if isinstance(r, Planned) and r.end > now]
            if not pending:
                return None
            record = min(pending, key=lambda r: r.end)
            kind = KINDS_BY_TYPE.get(record.session_type)
            if kind is not None and kind.failures:
                message = random.Random(record.id).choice(kind.failures).format(host=record.host)
            else:
                message = f"{display_name(record.session_type)} failed."
            if _is_collection(record):
                assert record.host is not None
                ends = self._collections[record.host]
                index = bisect.bisect_left(ends, record.end)
                if index < len(ends) and ends[index] == record.end:
                    del ends[index]  # a failed collection refreshes nothing
            self._records[record.id] = dataclasses.replace(
                record, state=FAILED, message=message, canceled=False
            )
            return record.id

    def remove(self, session_id: str, now: datetime) -> None:
        with self._lock:
            record = self._visible(session_id, now)
            del self._records[record.id]

    def _view(
        self, record: Record, now: datetime, shown_now: datetime, vocabulary: str, digits: int
    ) -> SimSession | None:
        view = _view(record, now, vocabulary, digits)
        if view is None or isinstance(record, Fixed):
            return view
        # A generated record's times are schedule times; rounding in the mapping must not
        # date a moment the schedule has just reached a microsecond after the shown now.
        created = min(self._shown(record.created), shown_now)
        if created == record.created:  # the history before the start: shown as generated
            return view
        ended = None if view.ended is None else min(self._shown(record.end), shown_now)
        return dataclasses.replace(
            view,
            name=_renamed(record, created),
            created=truncate(created, digits),
            ended=truncate(ended, digits) if ended is not None else None,
        )


def _is_collection(planned: Planned) -> bool:
    return (
        planned.session_type == COLLECT_JOB and planned.host is not None and planned.state != FAILED
    )


def _renamed(record: Record, created: datetime) -> str:
    """The name with the creation time it is shown with (a name carries its start)."""
    return f"{record.name.rsplit(' @', 1)[0]} @{name_stamp(created)}"


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
