"""JSON representations: Veeam's serializer turns XML attributes into properties, puts a
type's own fields before the inherited Name/UID/Links/Href/Type, and writes null for
missing values. Every key goes through `k`, which gives PascalCase (v12) or camelCase (v13).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from exporter.simulator import links as L
from exporter.simulator.auth import Logon
from exporter.simulator.links import Link
from exporter.simulator.model import SimEvent, SimSession
from exporter.simulator.timefmt import format_timestamp

Json = dict[str, Any]
Keys = Callable[[str], str]


def pascal(key: str) -> str:
    return key


def links_json(k: Keys, items: Sequence[Link]) -> list[Json]:
    return [
        {k("Rel"): x.rel, k("Href"): x.href, k("Name"): x.name, k("Type"): x.type} for x in items
    ]


def session(k: Keys, base: str, s: SimSession, digits: int) -> Json:
    return {
        k("SessionType"): s.session_type,
        k("CreationTimeUTC"): format_timestamp(s.created, digits),
        k("EndTimeUTC"): format_timestamp(s.ended, digits) if s.ended is not None else None,
        k("State"): s.state,
        k("Result"): {k("Result"): s.result, k("Message"): s.message, k("IsCanceled"): s.canceled},
        k("Name"): s.name,
        k("UID"): L.session_uid(s.id),
        k("Links"): links_json(k, L.entity_links(base, s.id, s.name)),
        k("Href"): L.session_entity_href(base, s.id),
        k("Type"): "SystemSession",
    }


def sessions(k: Keys, base: str, items: Sequence[SimSession], digits: int) -> Json:
    return {k("Sessions"): [session(k, base, s, digits) for s in items]}


def entity_ref(k: Keys, base: str, s: SimSession) -> Json:
    return {
        k("UID"): L.session_uid(s.id),
        k("Name"): s.name,
        k("Links"): links_json(k, L.reference_links(base, s.id, s.name)),
        k("Href"): L.session_ref_href(base, s.id),
        k("Type"): "SystemSessionReference",
    }


def references(k: Keys, base: str, items: Sequence[SimSession]) -> Json:
    return {k("Refs"): [entity_ref(k, base, s) for s in items]}


def events(k: Keys, base: str, s: SimSession, items: Sequence[SimEvent], digits: int) -> Json:
    return {
        k("Links"): links_json(k, L.events_links(base, s.id, s.name)),
        k("Events"): [
            {
                k("CreationTimeUTC"): format_timestamp(e.created, digits, zulu=False),
                k("Message"): e.message,
                k("Order"): e.order,
            }
            for e in items
        ],
        k("Href"): L.session_events_href(base, s.id),
        k("Type"): "SystemSessionEvents",
    }


def logon_session(k: Keys, base: str, logon: Logon) -> Json:
    return {
        k("UserName"): logon.username,
        k("SessionId"): logon.session_id,
        k("Links"): links_json(k, L.logon_links(base, logon.session_id)),
        k("Href"): L.logon_href(base, logon.session_id),
        k("Type"): "LogonSession",
    }


def logon_sessions(k: Keys, base: str, items: Sequence[Logon]) -> Json:
    return {k("LogonSessions"): [logon_session(k, base, logon) for logon in items]}


def enterprise_manager(k: Keys, base: str) -> Json:
    # The nesting (SupportedVersions inside SupportedVersions) is what real v12/v13 answer.
    versions = [
        {k("Links"): links_json(k, L.version_links(base, v)), k("Name"): v} for v in L.VERSIONS
    ]
    return {
        k("SupportedVersions"): {k("SupportedVersions"): versions},
        k("Links"): links_json(k, L.enterprise_manager_links(base)),
        k("Href"): None,
        k("Type"): None,
    }


def error(k: Keys, status: int, message: str) -> Json:
    return {
        k("FirstChanceExceptionMessage"): None,
        k("Message"): message,
        k("StackTrace"): None,
        k("Status"): None,
        k("StatusCode"): status,
    }
