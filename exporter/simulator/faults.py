"""Queued faults: what the next requests of a route will suffer."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

FAULT_KINDS = ("500", "503", "delay", "malformed", "truncated", "reset", "empty", "401")
Target = Literal["systemSessions", "logon"]
TARGETS: tuple[Target, ...] = ("systemSessions", "logon")
# An empty collection is meaningless for a logon.
_NOT_FOR_LOGON = frozenset({"empty"})


@dataclass(frozen=True)
class Fault:
    kind: str
    delay: float = 0.0


class FaultQueue:
    """One FIFO per target, so faults injected one after the other play in that order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {target: deque() for target in TARGETS}

    def inject(self, kind: str, count: int, *, delay: float, target: str) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if target not in self._queues:
            raise ValueError(f"unknown fault target {target!r}; one of {', '.join(TARGETS)}")
        if target == "logon" and kind in _NOT_FOR_LOGON:
            raise ValueError(f"fault {kind!r} does not apply to logon")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise ValueError("delay must be a number of seconds >= 0")
        with self._lock:
            self._queues[target].extend(Fault(kind, float(delay)) for _ in range(count))

    def take(self, target: Target) -> Fault | None:
        with self._lock:
            queue = self._queues[target]
            return queue.popleft() if queue else None

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()

    def pending(self) -> dict[str, list[str]]:
        with self._lock:
            return {target: [f.kind for f in queue] for target, queue in self._queues.items()}
