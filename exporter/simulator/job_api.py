"""The job-session routes: the query service, /api/backupSessions, /api/replicaSessions.

A filtered and sorted answer is kept for as long as the EM's view of the sessions stays the
same (until the next data collection), so paging through sixty thousand sessions costs one
filter and one sort, and each page only its rendering.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from exporter.simulator.core import SimCore
from exporter.simulator.estate import BACKUP_SESSION, REPLICA_SESSION
from exporter.simulator.faults import Fault, Target
from exporter.simulator.job_model import SimJobSession, SimTaskSession
from exporter.simulator.messages import Request, Response
from exporter.simulator.order import primary_key
from exporter.simulator.query import (
    JOB_SESSION_FIELDS,
    TASK_SESSION_FIELDS,
    Field,
    QueryError,
    compile_filter,
    page_links,
    paging,
    sort_field,
    sorted_by,
)
from exporter.simulator.render import Renderer
from exporter.simulator.settings import WINDOW_DAYS
from exporter.simulator.tasks import tasks_of

_CACHED_ANSWERS = 8


class FaultHooks(Protocol):
    """How the API's fault machinery is reached (exporter.simulator.api.Api)."""

    def collection_fault(
        self, target: Target, renderer: Renderer, page: int | None = None
    ) -> tuple[Fault | None, Response | None]: ...

    def late_fault(
        self, fault: Fault | None, response: Response, renderer: Renderer
    ) -> Response: ...


@dataclass(frozen=True)
class QueryType:
    name: str
    slot: str  # the list's name inside Entities
    fields: dict[str, Field]
    source: str  # the job-session type the items come from
    tasks: bool = False


QUERY_TYPES = {
    t.name.lower(): t
    for t in (
        QueryType("BackupJobSession", "BackupJobSessions", JOB_SESSION_FIELDS, BACKUP_SESSION),
        QueryType("ReplicaJobSession", "ReplicaJobSessions", JOB_SESSION_FIELDS, REPLICA_SESSION),
        QueryType(
            "BackupTaskSession", "BackupTaskSessions", TASK_SESSION_FIELDS, BACKUP_SESSION, True
        ),
    )
}
Item = SimJobSession | SimTaskSession


def _created(item: Item) -> datetime:
    return item.session.created if isinstance(item, SimTaskSession) else item.created


class JobRoutes:
    def __init__(self, core: SimCore, api: FaultHooks) -> None:
        self._core = core
        self._api = api
        self._lock = threading.Lock()
        # key -> (the views it was computed from, the answer, its oldest creation time)
        self._answers: dict[tuple[object, ...], tuple[object, list[Any], datetime | None]] = {}

    def handle(self, route: str, req: Request, renderer: Renderer, ident: str) -> Response:
        if route == "query":
            return self._query(req, renderer)
        fault, early = self._api.collection_fault("backupSessions", renderer)
        if early is not None:
            return early
        renderer = _flipped(renderer, fault)
        session_type = REPLICA_SESSION if route.startswith("replica") else BACKUP_SESSION
        entities = (req.query_value("format") or "").lower() == "entity"
        if route in ("backup_sessions", "replica_sessions"):
            horizon = self._core.clock.now() - timedelta(days=WINDOW_DAYS)
            views = [v for v in self._core.job_views(session_type) if v.created >= horizon]
            return self._list(fault, renderer, session_type, views, entities)
        try:
            session = self._core.job_session(session_type, ident)
        except KeyError:
            kind = "Replica" if session_type == REPLICA_SESSION else "Backup"
            return _error(renderer, 404, f"{kind} job session '{ident}' was not found.")
        if route == "task_sessions":
            tasks = self._tasks(session)
            tasks = _faulted(fault, tasks)
            body = renderer.task_sessions(tasks) if entities else renderer.task_references(tasks)
            return self._api.late_fault(fault, _ok(renderer, body), renderer)
        if route == "agent_sessions":
            children = [
                v for v in self._core.job_views(BACKUP_SESSION) if v.parent_id == session.id
            ]
            return self._list(fault, renderer, BACKUP_SESSION, children, entities)
        version = self._core.settings.em_version
        body = (
            renderer.job_entity(session, version) if entities else renderer.job_entity_ref(session)
        )
        return self._api.late_fault(fault, _ok(renderer, body), renderer)

    def _list(
        self,
        fault: Fault | None,
        renderer: Renderer,
        session_type: str,
        views: list[SimJobSession],
        entities: bool,
    ) -> Response:
        views = _faulted(fault, views)
        if entities:
            root = "ReplicaJobSessions" if session_type == REPLICA_SESSION else "BackupJobSessions"
            body = renderer.job_sessions(root, views, self._core.settings.em_version)
        else:
            body = renderer.job_references(views)
        return self._api.late_fault(fault, _ok(renderer, body), renderer)

    def _tasks(self, session: SimJobSession) -> list[SimTaskSession]:
        job = self._core.jobs.estate.by_uid.get(session.job_uid)
        return tasks_of(session, job, self._core.clock.now(), self._core.job_digits())

    def _query(self, req: Request, renderer: Renderer) -> Response:
        core = self._core
        settings = core.settings
        page_text = req.query_value("page")
        fault, early = self._api.collection_fault("query", renderer, _page_number(page_text))
        if early is not None:
            return early
        renderer = _flipped(renderer, fault)
        try:
            qtype = _query_type(req.query_value("type"))
            entities = _entities(req.query_value("format"))
            answer, oldest = self._answer(
                qtype,
                req.query_value("filter") or "",
                req.query_value("sortAsc"),
                req.query_value("sortDesc"),
            )
            if fault is not None and fault.kind == "empty":
                answer = []
            if settings.query_window_days > 0 and oldest is not None:
                horizon = core.clock.now() - timedelta(days=settings.query_window_days)
                if oldest < horizon:  # rare: the history is shorter than the window
                    answer = [x for x in answer if _created(x) >= horizon]
            pages = paging(
                len(answer), req.query_value("pageSize"), page_text, settings.query_page_size_cap
            )
        except QueryError as exc:
            return _error(renderer, 400, str(exc))
        items = _faulted(fault, answer[pages.first : pages.first + pages.page_size])
        links = page_links(
            renderer.base,
            req.query_pairs,
            pages,
            previous=settings.query_previous_link,
            upper_hex=settings.em_version == "13",
        )
        body = renderer.query_result(
            qtype.slot,
            entities,
            items,
            pages,
            links,
            em_version=settings.em_version,
            null_when_empty=settings.query_empty == "null",
        )
        return self._api.late_fault(fault, _ok(renderer, body), renderer)

    def _answer(
        self, qtype: QueryType, text: str, ascending: str | None, descending: str | None
    ) -> tuple[list[Any], datetime | None]:
        """The filtered, sorted answer and the creation time of its oldest entry."""
        if ascending is not None and descending is not None:
            raise QueryError("Only one of sortAsc and sortDesc can be given.")
        predicate = compile_filter(text, qtype.fields, qtype.name)
        by = ascending if ascending is not None else descending
        field = sort_field(by, qtype.fields, qtype.name) if by is not None else None
        version = self._core.settings.em_version
        views = self._core.job_views(qtype.source)
        key = (qtype.name, text, field.name if field else None, descending is not None, version)
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None and cached[0] is views:
                return cached[1], cached[2]
        items: Sequence[Any] = self._all_tasks(views, version) if qtype.tasks else views
        answer = [x for x in items if predicate(x)] if predicate is not None else list(items)
        if field is not None:
            answer = sorted_by(answer, field, descending=descending is not None, em_version=version)
        oldest = min((_created(x) for x in answer), default=None)
        with self._lock:
            if len(self._answers) >= _CACHED_ANSWERS:
                self._answers.pop(next(iter(self._answers)))
            self._answers[key] = (views, answer, oldest)
        return answer, oldest

    def _all_tasks(self, views: list[SimJobSession], version: str) -> list[SimTaskSession]:
        out = [t for v in views for t in self._tasks(v)]
        pk = primary_key(version)
        out.sort(key=lambda t: pk(t.id))
        return out


def _query_type(text: str | None) -> QueryType:
    if not text:
        raise QueryError("The type parameter is required.")
    found = QUERY_TYPES.get(text.lower())
    if found is None:
        raise QueryError(f"Unknown query type '{text}'.")
    return found


def _entities(text: str | None) -> bool:
    """Entities, or References (the default)."""
    value = (text or "References").lower()
    if value not in ("entities", "references"):
        raise QueryError(f"Unknown format '{text}': Entities or References.")
    return value == "entities"


def _page_number(text: str | None) -> int | None:
    if text is None:
        return 1
    try:
        return int(text)
    except ValueError:
        return None


def _flipped(renderer: Renderer, fault: Fault | None) -> Renderer:
    if fault is not None and fault.kind == "flip_casing":
        return dataclasses.replace(renderer, camel=not renderer.camel)
    return renderer


def _faulted(fault: Fault | None, items: list[Any]) -> list[Any]:
    """An `empty` answer has no entries; a `duplicate` one repeats its first at the end."""
    if fault is None:
        return items
    if fault.kind == "empty":
        return []
    if fault.kind == "duplicate" and items:
        return [*items, items[0]]
    return items


def _ok(renderer: Renderer, body: bytes) -> Response:
    return Response(200, body, renderer.content_type)


def _error(renderer: Renderer, status: int, message: str) -> Response:
    return Response(status, renderer.error(status, message), renderer.content_type)
