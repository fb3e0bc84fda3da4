"""Hrefs and Link lists shared by the XML and JSON representations."""

from __future__ import annotations

from dataclasses import dataclass

VERSIONS = ("v1_5", "v1_6", "v1_7")


@dataclass(frozen=True, slots=True)
class Link:
    rel: str
    href: str
    type: str | None = None
    name: str | None = None


def session_entity_href(base: str, session_id: str) -> str:
    return f"{base}/systemSessions/{session_id}?format=Entity"


def session_ref_href(base: str, session_id: str) -> str:
    return f"{base}/systemSessions/{session_id}"


def session_events_href(base: str, session_id: str) -> str:
    return f"{base}/systemSessions/{session_id}/events"


def session_uid(session_id: str) -> str:
    return f"urn:veeam:SystemSession:{session_id}"


def logon_href(base: str, session_id: str) -> str:
    return f"{base}/logonSessions/{session_id}"


def entity_links(base: str, session_id: str, name: str) -> list[Link]:
    # The Alternate link's Type is copied from backup sessions in Veeam's own examples.
    return [
        Link("Alternate", session_ref_href(base, session_id), "BackupJobSessionReference", name),
        Link("Down", session_events_href(base, session_id), "SystemSessionEvents", "Events"),
    ]


def reference_links(base: str, session_id: str, name: str) -> list[Link]:
    return [
        Link("Alternate", session_entity_href(base, session_id), "BackupJobSession", name),
        Link("Down", session_events_href(base, session_id), "SystemSessionEvents", "Events"),
    ]


def events_links(base: str, session_id: str, name: str) -> list[Link]:
    return [Link("Up", session_entity_href(base, session_id), "BackupJobSession", name)]


def enterprise_manager_links(base: str) -> list[Link]:
    return [
        Link("Down", f"{base}/logonSessions", "LogonSessionList"),
        Link("Create", f"{base}/sessionMngr/?v=latest", "LogonSession"),
    ]


def version_links(base: str, version: str) -> list[Link]:
    return [Link("Create", f"{base}/sessionMngr/?v={version}", "LogonSession")]


# A shortened copy of the links a real v12 logon session lists (the real one has ~70),
# keeping the system-session links with the Types Veeam copy-pasted from backup sessions.
_LOGON_DOWN_LINKS = (
    ("backupServers", "BackupServerReferenceList"),
    ("jobs", "JobReferenceList"),
    ("repositories", "RepositoryReferenceList"),
    ("backupSessions", "BackupJobSessionReferenceList"),
    ("restoreSessions", "RestoreSessionReferenceList"),
    ("replicaSessions", "ReplicaJobSessionReferenceList"),
    ("systemSessions", "BackupJobSessionReferenceList"),
    ("tasks", "TaskList"),
    ("querySvc", "QueryService"),
    ("lookupSvc", "LookupService"),
    ("backupServers?format=Entity", "BackupServerList"),
    ("jobs?format=Entity", "JobList"),
    ("backupSessions?format=Entity", "BackupJobSessionList"),
    ("systemSessions?format=Entity", "BackupJobSessionList"),
)


def logon_links(base: str, session_id: str) -> list[Link]:
    links = [Link("Up", f"{base}/", "EnterpriseManager")]
    links += [Link("Down", f"{base}/{path}", kind) for path, kind in _LOGON_DOWN_LINKS]
    links.append(Link("Down", f"{base}/reports/summary", "Report", "Summary"))
    links.append(Link("Delete", logon_href(base, session_id)))
    return links
