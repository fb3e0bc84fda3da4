"""URL matching for the EM API: route names, allowed methods and stats keys."""

from __future__ import annotations

import re
from dataclasses import dataclass

_GUID = r"(?P<id>[^/]+)"


@dataclass(frozen=True)
class Route:
    name: str
    template: str  # as written in stats keys
    methods: frozenset[str]
    pattern: re.Pattern[str]


def _route(name: str, template: str, methods: set[str], regex: str) -> Route:
    # WCF matches URI templates case-insensitively and ignores a trailing slash.
    return Route(name, template, frozenset(methods), re.compile(regex + "/?$", re.IGNORECASE))


ROUTES = (
    _route("root", "/api/", {"GET"}, r"^/api"),
    _route("logon", "/api/sessionMngr", {"POST"}, r"^/api/sessionMngr"),
    _route("logon_list", "/api/logonSessions", {"GET"}, r"^/api/logonSessions"),
    _route(
        "logon_one", "/api/logonSessions/{id}", {"GET", "DELETE"}, rf"^/api/logonSessions/{_GUID}"
    ),
    _route("sessions", "/api/systemSessions", {"GET"}, r"^/api/systemSessions"),
    _route("session", "/api/systemSessions/{id}", {"GET"}, rf"^/api/systemSessions/{_GUID}"),
    _route(
        "events",
        "/api/systemSessions/{id}/events",
        {"GET"},
        rf"^/api/systemSessions/{_GUID}/events",
    ),
    _route("query", "/api/query", {"GET"}, r"^/api/query"),
    _route("backup_sessions", "/api/backupSessions", {"GET"}, r"^/api/backupSessions"),
    _route("backup_session", "/api/backupSessions/{id}", {"GET"}, rf"^/api/backupSessions/{_GUID}"),
    _route(
        "task_sessions",
        "/api/backupSessions/{id}/taskSessions",
        {"GET"},
        rf"^/api/backupSessions/{_GUID}/taskSessions",
    ),
    _route(
        "agent_sessions",
        "/api/backupSessions/{id}/agentManagementSessions",
        {"GET"},
        rf"^/api/backupSessions/{_GUID}/agentManagementSessions",
    ),
    _route("replica_sessions", "/api/replicaSessions", {"GET"}, r"^/api/replicaSessions"),
    _route(
        "replica_session",
        "/api/replicaSessions/{id}",
        {"GET"},
        rf"^/api/replicaSessions/{_GUID}",
    ),
)
# The job-session routes, answered by exporter.simulator.job_api.
JOB_ROUTES = frozenset(
    {
        "query",
        "backup_sessions",
        "backup_session",
        "task_sessions",
        "agent_sessions",
        "replica_sessions",
        "replica_session",
    }
)


@dataclass(frozen=True)
class Match:
    route: Route | None
    ident: str | None

    def stats_key(self, method: str, query_type: str | None = None) -> str:
        """`GET /api/systemSessions`; a query is counted per type it asks for
        (`GET /api/query?type=BackupJobSession`)."""
        if self.route is None:
            return f"{method} (unknown)"
        if self.route.name == "query":
            return f"{method} {self.route.template}?type={query_type or '(none)'}"
        if self.route.name == "logon_one" and method == "DELETE":
            # Logouts are counted under the collection, as the exporter's tests expect.
            return "DELETE /api/logonSessions"
        return f"{method} {self.route.template}"


def match(path: str) -> Match:
    for route in ROUTES:
        found = route.pattern.match(path)
        if found:
            return Match(route, found.groupdict().get("id"))
    return Match(None, None)
