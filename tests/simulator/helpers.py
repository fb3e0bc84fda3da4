"""Shared helpers for the simulator tests: a controllable clock, logon, XML reading."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import requests
from lxml import etree

from exporter.simulator import SimulatedEM

NS = "http://www.veeam.com/ent/v1.0"
Q = f"{{{NS}}}"
AUTH = ("CORP\\svc_monitoring", "demo")
TOKEN = "X-RestSvcSessionId"
# A Monday noon with microseconds, so truncation and trimming have something to do.
T0 = datetime(2025, 3, 10, 12, 0, 0, 123456, tzinfo=UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, value: datetime) -> None:
        with self._lock:
            self._now = value

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


def logon(em: SimulatedEM, path: str = "/api/sessionMngr/?v=latest", **kw: object) -> str:
    response = requests.post(em.url + path, auth=AUTH, timeout=10, **kw)  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    return response.headers[TOKEN]


def get(em: SimulatedEM, path: str, token: str | None, **headers: str) -> requests.Response:
    sent = dict(headers)
    if token is not None:
        sent[TOKEN] = token
    return requests.get(em.url + path, headers=sent, timeout=10)


def parse_xml(body: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(body, parser)


def text(element: etree._Element, path: str) -> str | None:
    found = element.find(_qualify(path))
    return None if found is None else (found.text or "")


def _qualify(path: str) -> str:
    return "/".join(Q + part for part in path.split("/"))


def job_query(
    em: SimulatedEM,
    token: str,
    params: str,
    *,
    json_body: bool = True,
    kind: str = "BackupJobSession",
) -> requests.Response:
    """GET /api/query?type=<kind>&format=Entities&<params>, raw as given (not re-encoded)."""
    accept = {"Accept": "application/json"} if json_body else {}
    path = f"/api/query?type={kind}&format=Entities" + (f"&{params}" if params else "")
    return get(em, path, token, **accept)


def query_uids(
    em: SimulatedEM, token: str, params: str, kind: str = "BackupJobSession"
) -> list[str]:
    """The bare GUIDs a JSON query answers (PascalCase), in answer order."""
    response = job_query(em, token, params, kind=kind)
    assert response.status_code == 200, response.text
    slot = response.json()["Entities"][kind + "s"]
    return [] if slot is None else [e["UID"].rsplit(":", 1)[1] for e in slot[kind + "s"]]
