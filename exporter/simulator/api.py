"""The EM REST routes: logon, token checks, sessions, events, errors and injected faults."""

from __future__ import annotations

import base64
import binascii
import hmac
from http.cookies import CookieError, SimpleCookie

from exporter.simulator.auth import Logon
from exporter.simulator.bulk import gzip_bomb, padded
from exporter.simulator.core import SimCore
from exporter.simulator.faults import Fault, Target
from exporter.simulator.job_api import QUERY_TYPES, JobRoutes
from exporter.simulator.links import VERSIONS
from exporter.simulator.messages import Request, Response
from exporter.simulator.render import Renderer, corrupt, wants_json
from exporter.simulator.routes import JOB_ROUTES, match

TOKEN_HEADER = "X-RestSvcSessionId"  # noqa: S105 - a header name
# The texts Veeam uses for these cases are unknown; these say what happened.
MSG_NO_TOKEN = "Authorization header expected but not found."  # noqa: S105
MSG_BAD_TOKEN = "Authorization header was found but the logon session is expired or unknown."  # noqa: S105
MSG_BAD_CREDENTIALS = "Failed to log on: invalid user name or password."
MSG_NULL_REFERENCE = "Object reference not set to an instance of an object."
MSG_UNAVAILABLE = "The service is temporarily unavailable. Try again later."
MSG_ACCESS_DENIED = "Access denied."


def base_url(core: SimCore, req: Request) -> str:
    """Where hrefs point: the configured host name, else the Host the client used."""
    configured = core.settings.hostname_in_hrefs
    if configured:
        host = f"[{configured}]" if ":" in configured and "[" not in configured else configured
        return f"{req.scheme}://{host}:{req.server_port}/api"
    host_header = req.header("Host")
    if host_header:
        return f"{req.scheme}://{host_header}/api"
    host = f"[{req.server_host}]" if ":" in req.server_host else req.server_host
    return f"{req.scheme}://{host}:{req.server_port}/api"


class Api:
    def __init__(self, core: SimCore) -> None:
        self._core = core
        self._jobs = JobRoutes(core, self)

    def pause(self, seconds: float) -> bool:
        """Wait (a trickle's pace); True when the simulator is stopping instead."""
        return self._core.stopping.wait(seconds)

    def handle(self, req: Request) -> Response:
        response = self._handle(req)
        per_mb = self._core.settings.latency_per_mb
        if per_mb > 0 and response.body:
            self._core.sleep(per_mb * len(response.body) / 1_000_000)
        return response

    def _handle(self, req: Request) -> Response:
        core = self._core
        settings = core.settings
        renderer = Renderer(
            base=base_url(core, req),
            json=wants_json(req.header("Accept")),
            camel=settings.json_casing == "camel",
            bom=settings.bom,
            digits=settings.fraction_digits,
        )
        found = match(req.path)
        asked = (req.query_value("type") or "").lower()
        key = found.stats_key(
            req.method, QUERY_TYPES[asked].name if asked in QUERY_TYPES else asked
        )
        core.stats.count_request(key)
        core.stats.record_request(req.method, req.target, key)
        core.sleep(settings.latency)
        route = found.route
        if route is None:
            return _error(renderer, 404, f"Resource '{req.path}' was not found.")
        if req.method not in route.methods:
            response = _error(renderer, 405, f"Method {req.method} is not allowed here.")
            response.headers.append(("Allow", ", ".join(sorted(route.methods))))
            return response
        if route.name == "root":
            return _ok(renderer, renderer.enterprise_manager())
        if route.name == "logon":
            return self._logon(req, renderer)
        logon = self._authenticate(req, renderer)
        if isinstance(logon, Response):
            return logon
        core.stats.count_logon_request(logon.session_id, key)
        ident = found.ident or ""
        if route.name in JOB_ROUTES:
            return self._jobs.handle(route.name, req, renderer, ident)
        if route.name == "logon_list":
            return _ok(renderer, renderer.logon_sessions(core.logons.active()))
        if route.name == "logon_one":
            return self._logon_one(req, renderer, ident)
        if route.name == "sessions":
            return self._sessions(req, renderer)
        return self._one_session(req, renderer, ident, events=route.name == "events")

    def take_fault(self, target: Target, page: int | None = None) -> Fault | None:
        fault = self._core.faults.take(target, page)
        if fault is not None:
            self._core.stats.count_fault(fault.kind)
        return fault

    def collection_fault(
        self, target: Target, renderer: Renderer, page: int | None = None
    ) -> tuple[Fault | None, Response | None]:
        """The fault a collection request takes, and the answer that replaces it, if any."""
        fault = self.take_fault(target, page)
        if fault is not None and fault.kind == "401":
            return fault, _error(renderer, 401, MSG_BAD_TOKEN)
        if fault is not None and fault.kind == "403":
            return fault, _error(renderer, 403, MSG_ACCESS_DENIED)
        return fault, self.early_fault(fault, renderer)

    def early_fault(self, fault: Fault | None, renderer: Renderer) -> Response | None:
        """Faults that replace the answer; `delay` waits and lets the request go on."""
        if fault is None:
            return None
        if fault.kind == "delay":
            self._core.sleep(fault.delay)
        elif fault.kind == "500":
            return _error(renderer, 500, MSG_NULL_REFERENCE)
        elif fault.kind == "503":
            return _error(renderer, 503, MSG_UNAVAILABLE)
        elif fault.kind == "reset":
            return Response(0, cut="reset")
        elif fault.kind == "redirect":
            location = fault.location or renderer.base + "/redirected"
            return Response(302, headers=[("Location", location)])
        elif fault.kind == "gzip_bomb":
            chunks, length = gzip_bomb(fault.size)
            return Response(
                200,
                content_type=renderer.content_type,
                headers=[("Content-Encoding", "gzip")],
                stream=chunks,
                length=length,
                encoded=True,
            )
        return None

    @staticmethod
    def late_fault(fault: Fault | None, response: Response, renderer: Renderer) -> Response:
        if fault is None:
            return response
        if fault.kind == "malformed":
            response.body = corrupt(response.body, json_body=renderer.json)
        elif fault.kind == "truncated":
            response.cut = "truncate"
        elif fault.kind == "trickle":
            response.trickle = fault.delay
        elif fault.kind == "oversized":
            response.stream, response.length = padded(
                response.body, fault.size, json_body=renderer.json
            )
            response.body = b""
        return response

    def _logon(self, req: Request, renderer: Renderer) -> Response:
        core = self._core
        version = req.query_value("v") or "latest"
        if version.lower() not in ("latest", *VERSIONS):
            supported = ", ".join(("latest", *VERSIONS))
            return _error(renderer, 400, f"Unsupported API version '{version}' ({supported}).")
        fault = self.take_fault("logon")
        early = self.early_fault(fault, renderer)
        if early is not None:
            return early
        if (fault is not None and fault.kind == "401") or not self._credentials_ok(req):
            core.stats.count_failed_logon()
            response = _error(renderer, 401, MSG_BAD_CREDENTIALS)
            response.headers.append(("WWW-Authenticate", "Basic Realm=RestSvc"))
            return response
        logon = core.logons.create(core.settings.username, version.lower())
        core.stats.count_logon()
        response = Response(201, renderer.logon_session(logon), renderer.content_type)
        response.headers += [
            (TOKEN_HEADER, logon.token),
            ("Set-Cookie", f"{TOKEN_HEADER}={logon.token}; Path=/api;"),
        ]
        if fault is not None and fault.kind == "location_only":
            # Where the new logon session lives, and no body naming its SessionId.
            response.body = b""
            response.headers.append(
                ("Location", f"{renderer.base}/logonSessions/{logon.session_id}")
            )
        return self.late_fault(fault, response, renderer)

    def _credentials_ok(self, req: Request) -> bool:
        header = req.header("Authorization") or ""
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            raw = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        username, sep, password = text.partition(":")
        settings = self._core.settings
        # Windows account names are case-insensitive; passwords are not.
        user_ok = username.casefold() == settings.username.casefold()
        password_ok = hmac.compare_digest(password.encode(), settings.password.encode())
        return bool(sep) and user_ok and password_ok

    def _authenticate(self, req: Request, renderer: Renderer) -> Logon | Response:
        token = _token_of(req)
        logon = self._core.logons.use(token) if token else None
        if logon is not None:
            return logon
        self._core.stats.count_unauthorized()
        return _error(renderer, 401, MSG_BAD_TOKEN if token else MSG_NO_TOKEN)

    def _logon_one(self, req: Request, renderer: Renderer, ident: str) -> Response:
        logons = self._core.logons
        if req.method == "DELETE":
            fault = self.take_fault("logout")
            if fault is not None and fault.kind == "401":
                return _error(renderer, 401, MSG_BAD_TOKEN)
            early = self.early_fault(fault, renderer)
            if early is not None:
                return early
            if logons.delete(ident):
                self._core.stats.count_logout()
                return self.late_fault(fault, Response(204), renderer)
            return _error(renderer, 404, f"Logon session '{ident}' was not found.")
        found = logons.find(ident)
        if found is None:
            # A real EM answers 500 here instead of 404 (seen by other clients).
            return _error(renderer, 500, MSG_NULL_REFERENCE)
        return _ok(renderer, renderer.logon_session(found))

    def _sessions(self, req: Request, renderer: Renderer) -> Response:
        core = self._core
        fault, early = self.collection_fault("systemSessions", renderer)
        if early is not None:
            return early
        items = [] if fault is not None and fault.kind == "empty" else core.sessions()
        entity = (req.query_value("format") or "").lower() == "entity"
        if core.settings.references_for_plain_path and not entity:
            body = renderer.references(items)
        else:
            body = renderer.sessions(items)
        return self.late_fault(fault, _ok(renderer, body), renderer)

    def _one_session(
        self, req: Request, renderer: Renderer, ident: str, *, events: bool
    ) -> Response:
        core = self._core
        settings = core.settings
        now = core.clock.schedule_now()
        vocabulary, digits = settings.result_vocabulary, settings.fraction_digits
        try:
            session = core.store.get(ident, now, vocabulary=vocabulary, digits=digits)
            lines = core.store.events(ident, now, digits=digits) if events else []
        except KeyError:
            return _error(renderer, 404, f"System session '{ident}' was not found.")
        if events:
            return _ok(renderer, renderer.events(session, lines))
        if (req.query_value("format") or "").lower() == "entity":
            return _ok(renderer, renderer.entity(session))
        return _ok(renderer, renderer.entity_ref(session))


def _token_of(req: Request) -> str | None:
    """The cookie wins over the header when a client sends both (as documented)."""
    cookie_header = req.header("Cookie")
    if cookie_header:
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(cookie_header)
        except CookieError:
            cookies = SimpleCookie()
        morsel = cookies.get(TOKEN_HEADER)
        if morsel is not None and morsel.value:
            return morsel.value
    header = req.header(TOKEN_HEADER)
    return header.strip() if header else None


def _ok(renderer: Renderer, body: bytes) -> Response:
    return Response(200, body, renderer.content_type)


def _error(renderer: Renderer, status: int, message: str) -> Response:
    return Response(status, renderer.error(status, message), renderer.content_type)
