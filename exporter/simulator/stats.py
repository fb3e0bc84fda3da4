"""Thread-safe counters of what clients did to the simulated EM."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

# The last requests kept for `recent_requests`.
RECENT_REQUESTS = 1000


class SimStats:
    def __init__(self, active_tokens: Callable[[], int]) -> None:
        self._lock = threading.Lock()
        self._active_tokens = active_tokens
        self._routes: dict[str, int] = {}
        self._by_logon: dict[str, dict[str, int]] = {}
        self._recent: deque[dict[str, str]] = deque(maxlen=RECENT_REQUESTS)
        self._faults: dict[str, int] = {}
        self._logons = 0
        self._logouts = 0
        self._failed_logons = 0
        self._unauthorized = 0

    def count_request(self, route: str) -> None:
        with self._lock:
            self._routes[route] = self._routes.get(route, 0) + 1

    def count_logon_request(self, logon_id: str, route: str) -> None:
        """A request that passed the token check, under the logon session it used."""
        with self._lock:
            routes = self._by_logon.setdefault(logon_id, {})
            routes[route] = routes.get(route, 0) + 1

    def record_request(self, method: str, target: str, route: str) -> None:
        with self._lock:
            self._recent.append({"method": method, "target": target, "route": route})

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
    def requests_by_logon(self) -> dict[str, dict[str, int]]:
        """A copy: logon session id (the GUID in its body) -> route key -> requests that
        used its token; so a test sees whether two kinds of request shared one logon."""
        with self._lock:
            return {logon: dict(routes) for logon, routes in self._by_logon.items()}

    def recent_requests(self) -> list[dict[str, str]]:
        """The last requests (oldest first): method, target (path and query as sent, never
        a header) and route key."""
        with self._lock:
            return list(self._recent)

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
                "requests_by_logon": {k: dict(v) for k, v in self._by_logon.items()},
                "recent_requests": list(self._recent),
                "faults_served": dict(self._faults),
                "logons": self._logons,
                "logouts": self._logouts,
                "failed_logons": self._failed_logons,
                "unauthorized": self._unauthorized,
            }
        data["active_tokens"] = self._active_tokens()
        return data
