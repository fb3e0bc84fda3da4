"""Faults of every kind the simulator offers, injected through its loopback control API.

One fault batch at a time per EM: the next is queued only once the EM's queues are empty, so
every injected fault is known to have been served (or is cleared at the end), and the EM is
not starved of good polls. Logon faults need a logon: every token is expired once the fault
is queued, so the next poll's fetch gets a 401 and the exporter logs on into the fault.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

from exporter.simulator import FAULTS_FOR, SimulatedEM

STUCK_AFTER = 15.0  # seconds a batch may wait to be served before the EM is nudged
PLAN: tuple[tuple[str, str], ...] = (
    *(("systemSessions", k) for k in FAULTS_FOR["systemSessions"]),
    *(("logon", k) for k in FAULTS_FOR["logon"]),
)


@dataclass
class _Target:
    name: str
    sim: SimulatedEM
    rng: random.Random
    plan: list[tuple[str, str]] = field(default_factory=list)
    in_flight: tuple[str, str, int] | None = None
    next_at: float = 0.0
    queued_at: float = 0.0


class FaultInjector:
    """A thread that keeps faults coming until stopped; counts what was served."""

    def __init__(
        self, sims: dict[str, SimulatedEM], *, timeout: float, seed: int, pause: float
    ) -> None:
        self._targets = [
            _Target(name, sim, random.Random(f"{seed}:{name}")) for name, sim in sims.items()
        ]
        self._timeout = timeout  # the exporter's: a "delay" either side of it
        self._pause = pause  # mean seconds between one EM's batches
        self._http = requests.Session()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.served: Counter[tuple[str, str]] = Counter()
        self.served_by_server: Counter[str] = Counter()
        self.nudges: Counter[str] = Counter()
        self.longest_wait: dict[str, float] = {name: 0.0 for name in sims}  # queued -> served
        self.problems: list[str] = []

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop injecting and clear what is still queued (not counted as served)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
        for target in self._targets:
            self._control("DELETE", target.sim, "/_sim/faults")

    def _control(self, method: str, sim: SimulatedEM, path: str) -> dict[str, object]:
        response = self._http.request(method, sim.url + path, timeout=5)
        response.raise_for_status()
        data: dict[str, object] = response.json() if response.content else {}
        return data

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for target in self._targets:
                try:
                    self._step(target)
                except (requests.RequestException, ValueError) as exc:
                    self.problems.append(f"{target.name}: {exc}")
                    if len(self.problems) > 20:
                        return

    def _step(self, target: _Target) -> None:
        pending = self._control("GET", target.sim, "/_sim/stats")["pending_faults"]
        assert isinstance(pending, dict)
        if any(pending.values()):
            if time.monotonic() - target.queued_at > STUCK_AFTER:
                # A logon fault still waits: the exporter holds a token that works. Make it log
                # on again (counted, as it would mean the above did not hold).
                self._control("POST", target.sim, "/_sim/expire")
                target.queued_at = time.monotonic()
                self.nudges[target.name] += 1
            return
        if target.in_flight is not None:
            where, kind, count = target.in_flight
            with self._lock:
                self.served[(where, kind)] += count
                self.served_by_server[target.name] += count
                waited = time.monotonic() - target.queued_at
                self.longest_wait[target.name] = max(self.longest_wait[target.name], waited)
            target.in_flight = None
            target.next_at = time.monotonic() + target.rng.uniform(0.5, 1.5) * self._pause
        if time.monotonic() < target.next_at:
            return
        if not target.plan:
            target.plan = list(PLAN)
            target.rng.shuffle(target.plan)
        where, kind = target.plan.pop()
        count = 1 if where == "logon" else target.rng.randint(1, 3)
        query = f"fault={kind}&count={count}&target={where}"
        if kind == "delay":
            # Past the timeout the poll fails ("timeout"); under it, it is only slow.
            query += f"&delay={target.rng.choice((1.5, 0.3)) * self._timeout:.2f}"
        self._control("POST", target.sim, "/_sim/faults?" + query)
        if where == "logon":
            # After the fault is queued: a poll between an expiry and the queueing would log on
            # cleanly, and the fault would wait for a logon that never comes.
            self._control("POST", target.sim, "/_sim/expire")
        target.in_flight = (where, kind, count)
        target.queued_at = time.monotonic()
