"""A small stand-in for the EM's job-session resources, for the feed's tests.

It answers what the feed asks (the query service for ``type=BackupJobSession`` with a
``CreationTime>=`` or ``State`` filter, sorted by creation time, paged; one session by id) from
a list of sessions, by its own reading of the documented rules, so that a test can compare the
exporter's metrics with the sessions it holds. Reachable directly (:class:`JobSource`, for the
poller) or over HTTP (:class:`JobEMHandler`, for tests over real sockets).
"""

from __future__ import annotations

import io
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import BinaryIO, ClassVar, TypeVar

from jobanswers import Job, json_entity, json_page, xml_entity, xml_page

from exporter.parse import parse_timestamp
from exporter.reasons import Forbidden, LogonRefused, StatusError

T = TypeVar("T")
_LOOKUP = re.compile(r"/api/backupSessions/([0-9a-f-]{36})\?format=Entity")


@dataclass
class JobEM:
    """The sessions an EM holds, and how it answers queries about them."""

    jobs: list[Job] = field(default_factory=list)
    format: str = "xml"
    v13: bool = False
    refuse_not_equal: bool = False  # answer 400 to `State!=Stopped`
    # The next answers to a path prefix: an error status instead of the answer.
    faults: dict[str, list[int]] = field(default_factory=dict)
    # Asked first: an answer of its own for a path, or None for the usual one.
    intercept: Callable[[str], tuple[int, bytes] | None] | None = None
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, *jobs: Job) -> None:
        """Add sessions, or replace those with the same GUID."""
        with self.lock:
            by_guid = {job.guid: job for job in self.jobs}
            for job in jobs:
                by_guid[job.guid] = job
            self.jobs = list(by_guid.values())

    def remove(self, guid: str) -> None:
        with self.lock:
            self.jobs = [job for job in self.jobs if job.guid != guid]

    def answer(self, path: str) -> tuple[int, bytes]:
        with self.lock:
            self.requests.append(path)
            if self.intercept is not None and (own := self.intercept(path)) is not None:
                return own
            for prefix, statuses in self.faults.items():
                if path.startswith(prefix) and statuses:
                    return statuses.pop(0), b""
            lookup = _LOOKUP.fullmatch(path)
            if lookup:
                found = [job for job in self.jobs if job.guid == lookup.group(1)]
                if not found:
                    return 404, b""
                return 200, self._entity(found[0])
            if path.startswith("/api/query?"):
                return self._query(dict(urllib.parse.parse_qsl(path.partition("?")[2])))
            return 404, b""

    def _entity(self, job: Job) -> bytes:
        return json_entity(job, v13=self.v13) if self.format == "json" else xml_entity(job)

    def _query(self, params: dict[str, str]) -> tuple[int, bytes]:
        if params.get("type") != "BackupJobSession" or params.get("format") != "Entities":
            return 400, b""
        matches = self._filter(params.get("filter", ""))
        if matches is None:
            return 400, b""
        order = params.get("sortDesc") or params.get("sortAsc")
        if order is not None and order.lower() != "creationtime":
            return 400, b""
        selected = sorted(matches, key=lambda j: j.created, reverse="sortDesc" in params)
        size = int(params.get("pageSize", "100"))
        page = int(params.get("page", "1"))
        pages = (len(selected) + size - 1) // size
        chunk = selected[(page - 1) * size : page * size]
        if self.format == "json":
            return 200, json_page(chunk, page=page, pages=pages, page_size=size, v13=self.v13)
        return 200, xml_page(chunk, page=page, pages=pages, page_size=size)

    def _filter(self, text: str) -> list[Job] | None:
        created = re.fullmatch(r'CreationTime>="([^"]+)"', text)
        if created:
            since = parse_timestamp(created.group(1))
            return [job for job in self.jobs if since is not None and job.created >= since]
        if text == "State!=Stopped":
            if self.refuse_not_equal:
                return None
            return [job for job in self.jobs if job.state.lower() != "stopped"]
        states = re.findall(r"State==(\w+)", text)
        if states and ",".join(f"State=={s}" for s in states) == text:
            return [job for job in self.jobs if job.state in states]
        return None


class JobSource:
    """The EM client's shape, answering from a :class:`JobEM` and scripted system sessions."""

    def __init__(
        self,
        em: JobEM,
        system: Callable[[], bytes],
        on_logon: Callable[[], None] = lambda: None,
    ) -> None:
        self.em = em
        self._system = system
        self._on_logon = on_logon
        self._logged_on = False
        self.closed = False

    def _log_on(self) -> None:
        if not self._logged_on:
            self._logged_on = True
            self._on_logon()

    def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T:
        body = self._system()  # a scripted error is raised before any logon
        self._log_on()
        return consume(io.BytesIO(body))

    def get(
        self, path: str, consume: Callable[[BinaryIO], T], *, forbidden_relogon: bool = True
    ) -> T:
        status, body = self.em.answer(path)
        op = "GET " + path.partition("?")[0]
        if status == 401:  # as a refused logon: no logon accepted
            raise LogonRefused("logon refused: HTTP 401")
        self._log_on()
        if status == 403 and not forbidden_relogon:  # as the client: the token kept
            raise Forbidden(f"{op}: HTTP 403 Forbidden: the account's role does not allow this")
        if status >= 400:
            raise StatusError(status, f"{op}: HTTP {status}")
        return consume(io.BytesIO(body))

    def close(self, timeout: float = 3.0) -> None:
        self.closed = True


SYSTEM_SESSIONS = (
    b'<SystemSessions xmlns="http://www.veeam.com/ent/v1.0"><Sessions UID="urn:veeam:Session:1">'
    b"<SessionType>CollectJob</SessionType><State>CompletedSuccessfully</State>"
    b"<CreationTimeUTC>2026-06-16T05:45:00Z</CreationTimeUTC>"
    b"<EndTimeUTC>2026-06-16T05:46:00Z</EndTimeUTC>"
    b"<Result><Result>Success</Result><Message /><IsCanceled>false</IsCanceled></Result>"
    b"</Sessions></SystemSessions>"
)


SYSTEM_SESSIONS_JSON = (
    b'{"Sessions": [{"UID": "urn:veeam:Session:1", "SessionType": "CollectJob", '
    b'"State": "CompletedSuccessfully", "CreationTimeUTC": "2026-06-16T05:45:00Z", '
    b'"EndTimeUTC": "2026-06-16T05:46:00Z", "Result": {"Result": "Success", "Message": "", '
    b'"IsCanceled": false}}]}'
)


class JobEMHandler(BaseHTTPRequestHandler):
    """An EM over HTTP: logon, the system sessions, the job-session resources, logout."""

    em: ClassVar[JobEM]
    logons: ClassVar[list[str]]
    token: ClassVar[str] = "dG9rZW4tb2YtdGhlLWpvYi1lbQ=="

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        content_type = "application/json" if self.em.format == "json" else "application/xml"
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.logons.append(self.path)
        body = (
            b'<LogonSession xmlns="http://www.veeam.com/ent/v1.0">'
            b"<SessionId>0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b</SessionId></LogonSession>"
        )
        self._send(201, body, {"X-RestSvcSessionId": self.token})

    def do_GET(self) -> None:
        if self.headers.get("X-RestSvcSessionId") != self.token:
            self._send(401)
            return
        if self.path.startswith("/api/systemSessions"):
            self._send(200, SYSTEM_SESSIONS_JSON if self.em.format == "json" else SYSTEM_SESSIONS)
            return
        status, body = self.em.answer(self.path)
        self._send(status, body)

    def do_DELETE(self) -> None:
        self._send(204)
