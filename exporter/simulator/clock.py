"""Simulated time: the base clock, accelerated by `speed`, frozen when not live."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from exporter.simulator.timefmt import as_utc


def utc_now() -> datetime:
    return datetime.now(UTC)


class SimClock:
    """Maps the base clock (real time, or a test's clock) to simulated time.

    Simulated time advances `speed` times as fast as the base clock from the last anchor;
    changing speed or live re-anchors so simulated time never jumps. Not live means the
    simulated clock stands still, which makes every answer stable.
    """

    def __init__(self, base: Callable[[], datetime], *, speed: float, live: bool) -> None:
        self._base = base
        self._lock = threading.Lock()
        self._speed = float(speed)
        self._live = live
        self._anchor_base = self.base_now()
        self._anchor_sim = self._anchor_base

    def base_now(self) -> datetime:
        return as_utc(self._base())

    def now(self) -> datetime:
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> datetime:
        if not self._live:
            return self._anchor_sim
        return self._anchor_sim + (self.base_now() - self._anchor_base) * self._speed

    def configure(self, *, speed: float | None = None, live: bool | None = None) -> None:
        with self._lock:
            self._anchor_sim = self._now_locked()
            self._anchor_base = self.base_now()
            if speed is not None:
                self._speed = float(speed)
            if live is not None:
                self._live = live
