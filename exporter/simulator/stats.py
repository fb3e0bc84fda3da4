"""Thread-safe counters of what clients did to the simulated EM."""

from __future__ import annotations

import threading
from collections.abc import Callable


class SimStats:
    def __init__(self, active_tokens: Callable[[], int]) -> None:
        self._lock = threading.Lock()
        self._active_tokens = active_tokens
        self._routes: dict[str, int] = {}
        self._faults: dict[str, int] = {}
        self._logons = 0
        self._logouts = 0
        self._failed_logons = 0
        self._unauthorized = 0

    def count_request(self, route: str) -> None:
        with self._lock:
            self._routes[route] = self._routes.get(route, 0) + 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + 1

    def count_logon(self) -> None:
        with self._lock:
            self._logons += 1

    def count_logout(self) -> None:
        with self._lock:
            self._logouts += 1

    def count_failed_logon(self) -> None:
        with self._lock:
            self._failed_logons += 1

    def count_unauthorized(self) -> None:
        with self._lock:
            self._unauthorized += 1

    @property
    def requests_by_route(self) -> dict[str, int]:
        """A copy: route key (`GET /api/systemSessions`) -> requests received."""
        with self._lock:
            return dict(self._routes)

    @property
    def faults_served(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    @property
    def logons(self) -> int:
        with self._lock:
            return self._logons

    @property
    def logouts(self) -> int:
        with self._lock:
            return self._logouts

    @property
    def failed_logons(self) -> int:
        with self._lock:
            return self._failed_logons

    @property
    def unauthorized(self) -> int:
        """401 answers to requests with a missing, unknown or expired token."""
        with self._lock:
            return self._unauthorized

    def active_tokens(self) -> int:
        return self._active_tokens()

    def as_dict(self) -> dict[str, object]:
        with self._lock:
            data: dict[str, object] = {
                "requests_by_route": dict(self._routes),
                "faults_served": dict(self._faults),
                "logons": self._logons,
                "logouts": self._logouts,
                "failed_logons": self._failed_logons,
                "unauthorized": self._unauthorized,
            }
        data["active_tokens"] = self._active_tokens()
        return data
