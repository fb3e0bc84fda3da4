"""Simulated time: the shown clock never runs ahead of the base clock; `speed` compresses
the schedule of live activity instead.

Two times are kept apart. The *schedule* time is where the generated job schedule has got
to: it advances `speed` times as fast as the base clock while live and stands still when not.
The *shown* time is what every answer says: the base clock (real time, or a test's clock)
while live, the moment it stopped when not. History up to the simulator's start is shown as
generated; after it, a schedule moment is shown at the base time when the schedule reached
it, so at speed 20 a job that runs every 15 minutes runs every 45 seconds and lasts a
twentieth as long, and no session is ever dated after the shown now.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from exporter.simulator.timefmt import as_utc

# (base time, schedule time, rate): from base time on, the schedule advances `rate` times as
# fast as the base clock; rate 0 while not live.
_Segment = tuple[datetime, datetime, float]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SimClock:
    """Maps the base clock to schedule time and schedule time back to shown time.

    Changing speed or live starts a new segment, so neither clock ever jumps and a moment
    already shown keeps its time.
    """

    def __init__(self, base: Callable[[], datetime], *, speed: float, live: bool) -> None:
        self._base = base
        self._lock = threading.Lock()
        self._speed = float(speed)
        self._live = live
        self.start = self.base_now()
        self._segments: tuple[_Segment, ...] = ((self.start, self.start, self._rate()),)

    def _rate(self) -> float:
        return self._speed if self._live else 0.0

    def base_now(self) -> datetime:
        return as_utc(self._base())

    def now(self) -> datetime:
        """The shown now: the base clock while live, the moment it stopped when not."""
        with self._lock:
            base_at, _, rate = self._segments[-1]
            live = rate > 0
        return self.base_now() if live else base_at

    def schedule_now(self) -> datetime:
        with self._lock:
            return self._schedule_locked(self.base_now())

    def _schedule_locked(self, base: datetime) -> datetime:
        base_at, schedule_at, rate = self._segments[-1]
        if rate == 0:
            return schedule_at
        return schedule_at + (base - base_at) * rate

    def shown(self, schedule: datetime) -> datetime:
        """When the schedule reached `schedule`, on the shown clock (the history before the
        start is shown as generated). A moment the schedule has not reached yet maps as if
        the current speed held."""
        segments = self._segments  # replaced whole, never changed in place
        if schedule <= segments[0][1]:
            return schedule
        for base_at, schedule_at, rate in reversed(segments):
            if rate > 0 and schedule >= schedule_at:
                return base_at + (schedule - schedule_at) / rate
        return schedule

    def configure(self, *, speed: float | None = None, live: bool | None = None) -> None:
        with self._lock:
            base = self.base_now()
            schedule = self._schedule_locked(base)
            if speed is not None:
                self._speed = float(speed)
            if live is not None:
                self._live = live
            self._segments = (*self._segments, (base, schedule, self._rate()))
