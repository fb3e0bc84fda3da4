"""Queued faults: what the next requests of a route will suffer."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

FAULT_KINDS = (
    "500",
    "503",
    "delay",
    "malformed",
    "truncated",
    "reset",
    "empty",
    "401",
    "trickle",
    "redirect",
    "oversized",
    "gzip_bomb",
    "location_only",
    "403",
    "duplicate",
    "flip_casing",
)
Target = Literal["systemSessions", "logon", "logout", "query", "backupSessions"]
TARGETS: tuple[Target, ...] = ("systemSessions", "logon", "logout", "query", "backupSessions")
_JOB_ONLY = frozenset({"403", "duplicate", "flip_casing"})
# Faults that make no sense for a route: a logon has no collection, a logout (204) no body;
# only the job-session routes repeat an entry, answer in the other JSON casing, or refuse an
# account whose role may read the system sessions but not the job sessions (403).
_NOT_FOR: dict[str, frozenset[str]] = {
    "systemSessions": frozenset({"location_only"}) | _JOB_ONLY,
    "logon": frozenset({"empty", "oversized", "gzip_bomb"}) | _JOB_ONLY,
    "logout": frozenset(
        {"malformed", "truncated", "empty", "oversized", "gzip_bomb", "location_only"}
    )
    | _JOB_ONLY,
    "query": frozenset({"location_only"}),
    "backupSessions": frozenset({"location_only"}),
}
# The faults each target accepts, in FAULT_KINDS order.
FAULTS_FOR: dict[str, tuple[str, ...]] = {
    target: tuple(kind for kind in FAULT_KINDS if kind not in _NOT_FOR[target])
    for target in TARGETS
}
# An answer of at least this many decoded bytes, unless the injection says otherwise.
DEFAULT_SIZES = {"oversized": 64 * 1024**2, "gzip_bomb": 10 * 1024**3}
# A trickle with no delay given sends a byte a second.
DEFAULT_TRICKLE_INTERVAL = 1.0


@dataclass(frozen=True)
class Fault:
    kind: str
    delay: float = 0.0  # seconds to wait (delay) or between two bytes (trickle)
    size: int = 0  # decoded bytes of an oversized answer or a gzip bomb
    location: str = ""  # where a redirect points; empty: /api/redirected on this simulator
    page: int | None = None  # query only: the fault waits for a request of this page


class FaultQueue:
    """One FIFO per target, so faults injected one after the other play in that order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {target: deque() for target in TARGETS}

    def inject(
        self,
        kind: str,
        count: int,
        *,
        delay: float,
        target: str,
        size: int | None = None,
        location: str = "",
        page: int | None = None,
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if target not in self._queues:
            raise ValueError(f"unknown fault target {target!r}; one of {', '.join(TARGETS)}")
        if kind in _NOT_FOR[target]:
            raise ValueError(f"fault {kind!r} does not apply to {target}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise ValueError("delay must be a number of seconds >= 0")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError("size must be a positive number of bytes")
        if not isinstance(location, str):
            raise ValueError("location must be a string")
        if page is not None and (
            target != "query" or isinstance(page, bool) or not isinstance(page, int) or page < 1
        ):
            raise ValueError("page must be a positive integer, and only for the query target")
        if kind == "trickle" and delay == 0:
            delay = DEFAULT_TRICKLE_INTERVAL
        fault = Fault(
            kind,
            float(delay),
            size if size is not None else DEFAULT_SIZES.get(kind, 0),
            location,
            page,
        )
        with self._lock:
            self._queues[target].extend(fault for _ in range(count))

    def take(self, target: Target, page: int | None = None) -> Fault | None:
        """The next fault of the target; one waiting for another page stays queued (and
        holds back the faults behind it, so the order of injection holds)."""
        with self._lock:
            queue = self._queues[target]
            if not queue or (queue[0].page is not None and queue[0].page != page):
                return None
            return queue.popleft()

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()

    def pending(self) -> dict[str, list[str]]:
        with self._lock:
            return {target: [f.kind for f in queue] for target, queue in self._queues.items()}
