"""The simulated EM's state, shared by the HTTP side and the Python API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from exporter.simulator.auth import LogonStore
from exporter.simulator.clock import SimClock, utc_now
from exporter.simulator.faults import FaultQueue
from exporter.simulator.model import SimSession
from exporter.simulator.settings import SimulatorSettings, updated, validate
from exporter.simulator.stats import SimStats
from exporter.simulator.store import SessionStore


class SimCore:
    def __init__(self, settings: SimulatorSettings, clock: Callable[[], datetime] | None) -> None:
        validate(settings)
        self._settings = replace(settings)
        self._settings_lock = threading.Lock()
        self.clock = SimClock(clock or utc_now, speed=settings.speed, live=settings.live)
        self.store = SessionStore(
            seed=settings.seed,
            backup_servers=settings.backup_servers,
            history_days=settings.history_days,
            start=self.clock.start,
            shown=self.clock.shown,
        )
        self.store.extras.set_count(settings.extra_session_types, self.clock.now())
        self.logons = LogonStore(self.clock.base_now, lambda: self.settings.token_idle_expiry)
        self.faults = FaultQueue()
        self.stats = SimStats(lambda: len(self.logons.active()))
        # Set on stop so that injected delays and latency end at once.
        self.stopping = threading.Event()
        self._fail_lock = threading.Lock()
        self._last_forced_failure = self.clock.now()

    @property
    def settings(self) -> SimulatorSettings:
        """The current settings; replaced as a whole on change, so a reference stays coherent."""
        return self._settings

    def set(self, knobs: dict[str, object]) -> SimulatorSettings:
        with self._settings_lock:
            new = updated(self._settings, knobs)
            if "speed" in knobs or "live" in knobs:
                self.clock.configure(speed=new.speed, live=new.live)
            if "extra_session_types" in knobs:
                self.store.extras.set_count(new.extra_session_types, self.clock.now())
            self._settings = new
            return new

    def sessions(self) -> list[SimSession]:
        s = self.settings
        self._fail_when_due()
        return self.store.snapshot(
            self.clock.schedule_now(), vocabulary=s.result_vocabulary, digits=s.fraction_digits
        )

    def fail_next(self) -> str | None:
        """Make the next generated session to finish fail; its id, or None if there is none."""
        return self.store.fail_next(self.clock.schedule_now())

    def _fail_when_due(self) -> None:
        # Checked when sessions are asked for, which is when a failure can be seen: so the
        # demo's headline alert has a failure to fire on every few minutes.
        every = self.settings.fail_every
        if every <= 0:
            return
        now = self.clock.now()
        with self._fail_lock:
            if (now - self._last_forced_failure).total_seconds() < every:
                return
            self._last_forced_failure = now
        self.fail_next()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.stopping.wait(seconds)

    def _view(self, session_id: str) -> SimSession:
        s = self.settings
        return self.store.describe(
            session_id,
            self.clock.schedule_now(),
            vocabulary=s.result_vocabulary,
            digits=s.fraction_digits,
        )

    def add_session(
        self,
        session_type: str,
        *,
        state: str,
        created: datetime | None,
        ended: datetime | None,
        result: str | None,
        message: str,
        canceled: bool,
    ) -> SimSession:
        if not session_type:
            raise ValueError("session_type is empty")
        session_id = self.store.add(
            session_type,
            self.clock.schedule_now(),
            state=state,
            created=created,
            ended=ended,
            result=result,
            message=message,
            canceled=canceled,
        )
        return self._view(session_id)

    def finish_session(
        self, session_id: str, *, state: str, ended: datetime | None, message: str, canceled: bool
    ) -> SimSession:
        self.store.finish(
            session_id,
            self.clock.schedule_now(),
            state=state,
            ended=ended,
            message=message,
            canceled=canceled,
        )
        return self._view(session_id)

    def remove_session(self, session_id: str) -> None:
        self.store.remove(session_id, self.clock.schedule_now())
