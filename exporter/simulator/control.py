"""The /_sim control API for driving a standalone simulator (loopback clients only)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from datetime import datetime
from typing import Any

from exporter.simulator.core import SimCore
from exporter.simulator.estate import SESSION_TYPES
from exporter.simulator.faults import TARGETS
from exporter.simulator.job_model import STOPPED, WORKING, SimJob, SimJobSession
from exporter.simulator.job_model import SUCCESS as JOB_SUCCESS
from exporter.simulator.messages import Request, Response
from exporter.simulator.model import IN_PROGRESS, SUCCESS, SimSession
from exporter.simulator.timefmt import as_utc

PREFIX = "/_sim"
_JSON = "application/json; charset=utf-8"


def is_control_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


class BadRequest(ValueError):
    pass


class Control:
    def __init__(self, core: SimCore) -> None:
        self._core = core

    def handle(self, req: Request) -> Response:
        if not is_loopback(req.client_host):
            return _json(404, {"error": "not found"})
        parts = [p for p in req.path[len(PREFIX) :].split("/") if p]
        try:
            return self._dispatch(req, parts)
        except ValueError as exc:  # BadRequest, and bad values refused by the core
            return _json(400, {"error": str(exc)})
        except KeyError as exc:
            return _json(404, {"error": f"unknown session {exc}"})

    def _dispatch(self, req: Request, parts: list[str]) -> Response:
        core = self._core
        method = req.method
        if parts == ["stats"] and method == "GET":
            data = core.stats.as_dict()
            data["pending_faults"] = core.faults.pending()
            return _json(200, data)
        if parts == ["expire"] and method == "POST":
            core.logons.expire_all()
            return Response(204)
        if parts == ["faults"] and method == "POST":
            count = _int(req.query_value("count") or "1", "count")
            delay = _float(req.query_value("delay") or "0", "delay")
            target = req.query_value("target") or "systemSessions"
            if target not in TARGETS:
                raise BadRequest(f"target must be one of {', '.join(TARGETS)}")
            size_text = req.query_value("size")
            page_text = req.query_value("page")
            core.faults.inject(
                req.query_value("fault") or "",
                count,
                delay=delay,
                target=target,
                size=None if size_text is None else _int(size_text, "size"),
                location=req.query_value("location") or "",
                page=None if page_text is None else _int(page_text, "page"),
            )
            return _json(200, {"pending_faults": core.faults.pending()})
        if parts == ["fail"] and method == "POST":
            failing = core.fail_next()
            if failing is None:
                return _json(409, {"error": "no generated session is due to finish"})
            # The session may not have started yet, so only its id is certain to be shown.
            return _json(200, {"failing": failing})
        if parts == ["faults"] and method == "DELETE":
            core.faults.clear()
            return Response(204)
        if parts == ["settings"] and method == "GET":
            return _json(200, _settings(core))
        if parts == ["settings"] and method == "POST":
            core.set(_body(req))
            return _json(200, _settings(core))
        if parts == ["sessions"] and method == "GET":
            return _json(
                200,
                {"sessions": [_session(s) for s in core.sessions()], "now": _iso(core.clock.now())},
            )
        if parts == ["sessions"] and method == "POST":
            return _json(201, _session(self._add(_body(req))))
        if len(parts) == 3 and parts[0] == "sessions" and parts[2] == "finish" and method == "POST":
            body = _body(req)
            session = core.finish_session(
                parts[1],
                state=str(body.get("state", SUCCESS)),
                ended=_time(body.get("ended")),
                message=str(body.get("message", "")),
                canceled=bool(body.get("canceled", False)),
            )
            return _json(200, _session(session))
        if len(parts) == 2 and parts[0] == "sessions" and method == "DELETE":
            core.remove_session(parts[1])
            return Response(204)
        if parts and parts[0] in ("jobs", "job_sessions", "collect"):
            return self._jobs(req, parts)
        return _json(404, {"error": "not found"})

    def _jobs(self, req: Request, parts: list[str]) -> Response:
        core = self._core
        method = req.method
        if parts == ["jobs"] and method == "GET":
            return _json(200, {"jobs": [_job(j) for j in core.job_list()]})
        if parts == ["collect"] and method == "POST":
            try:
                collections = core.collect(req.query_value("backup_server"))
            except ValueError as exc:
                raise BadRequest(str(exc)) from exc
            return _json(200, {"collections": _collections(collections)})
        if parts == ["job_sessions"] and method == "GET":
            session_type = req.query_value("type") or SESSION_TYPES[0]
            if session_type not in SESSION_TYPES:
                raise BadRequest(f"type must be one of {', '.join(SESSION_TYPES)}")
            uncollected = (req.query_value("uncollected") or "").lower() in ("1", "true")
            views = core.job_views(session_type, truth=uncollected)
            return _json(
                200,
                {
                    "now": _iso(core.clock.now()),
                    "collections": _collections(core.job_collections()),
                    "sessions": [_job_session(v) for v in views],
                },
            )
        if parts == ["job_sessions"] and method == "POST":
            return _json(201, _job_session(self._add_job(_body(req))))
        finish = len(parts) == 3 and parts[0] == "job_sessions" and parts[2] == "finish"
        if finish and method == "POST":
            body = _body(req)
            progress = body.get("progress")
            finished = core.finish_job_session(
                parts[1],
                result=str(body.get("result", JOB_SUCCESS)),
                state=str(body.get("state", STOPPED)),
                ended=_time(body.get("ended")),
                progress=None if progress is None else _int(str(progress), "progress"),
            )
            return _json(200, _job_session(finished))
        if len(parts) == 2 and parts[0] == "job_sessions" and method == "DELETE":
            core.remove_job_session(parts[1])
            return Response(204)
        return _json(404, {"error": "not found"})

    def _add_job(self, body: dict[str, Any]) -> SimJobSession:
        if "job" not in body:
            raise BadRequest("job (a job uid or name) is required")

        def text(name: str) -> str | None:
            value = body.get(name)
            return None if value is None else str(value)

        def number(name: str) -> int | None:
            value = body.get(name)
            return None if value is None else _int(str(value), name)

        try:
            return self._core.add_job_session(
                str(body["job"]),
                state=str(body.get("state", WORKING)),
                result=text("result"),
                created=_time(body.get("created")),
                ended=_time(body.get("ended")),
                progress=number("progress"),
                is_retry=bool(body.get("is_retry", False)),
                job_name=text("job_name"),
                job_type=text("job_type"),
                session_id=text("session_id"),
                parent_id=text("parent_id"),
                restore_points=number("restore_points"),
                failure_message=text("failure_message"),
            )
        except KeyError as exc:
            raise BadRequest(f"unknown job {exc}") from exc

    def _add(self, body: dict[str, Any]) -> SimSession:
        if "session_type" not in body:
            raise BadRequest("session_type is required")
        result = body.get("result")
        return self._core.add_session(
            str(body["session_type"]),
            state=str(body.get("state", IN_PROGRESS)),
            created=_time(body.get("created")),
            ended=_time(body.get("ended")),
            result=None if result is None else str(result),
            message=str(body.get("message", "")),
            canceled=bool(body.get("canceled", False)),
        )


def _settings(core: SimCore) -> dict[str, Any]:
    data = dataclasses.asdict(core.settings)
    data["password"] = "***"  # noqa: S105 - never echo the password, even the demo one
    return data


def _body(req: Request) -> dict[str, Any]:
    try:
        data = json.loads(req.body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer") from exc


def _float(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise BadRequest(f"{name} must be a number") from exc


def _time(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("times must be ISO 8601 strings")
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise BadRequest(f"not an ISO 8601 time: {value!r}") from exc


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat().replace("+00:00", "Z") if value is not None else None


def _session(s: SimSession) -> dict[str, Any]:
    return {
        "id": s.id,
        "session_type": s.session_type,
        "name": s.name,
        "created": _iso(s.created),
        "ended": _iso(s.ended),
        "state": s.state,
        "result": s.result,
        "message": s.message,
        "canceled": s.canceled,
    }


def _job(j: SimJob) -> dict[str, Any]:
    return {
        "uid": j.uid,
        "name": j.name,
        "job_type": j.job_type,
        "session_type": j.session_type,
        "backup_server": j.backup_server,
        "backup_server_uid": j.backup_server_uid,
        "parent_uid": j.parent_uid,
        "objects": list(j.objects),
    }


def _job_session(s: SimJobSession) -> dict[str, Any]:
    return {
        "id": s.id,
        "uid": s.uid,
        "session_type": s.session_type,
        "name": s.name,
        "job_uid": s.job_uid,
        "job_name": s.job_name,
        "job_type": s.job_type,
        "backup_server": s.backup_server,
        "backup_server_uid": s.backup_server_uid,
        "created": _iso(s.created),
        "ended": _iso(s.ended),
        "state": s.state,
        "result": s.result,
        "progress": s.progress,
        "is_retry": s.is_retry,
        "parent_id": s.parent_id,
        "restore_points": s.restore_points,
        "failure_message": s.failure_message,
    }


def _collections(collections: dict[str, datetime | None]) -> dict[str, str | None]:
    return {host: _iso(at) for host, at in collections.items()}


def _json(status: int, data: dict[str, Any]) -> Response:
    return Response(status, json.dumps(data).encode("utf-8"), _JSON)
