"""Hrefs and Link lists of job sessions and task sessions (XML and JSON alike).

An entity's links name its backup server (`Up`, `BackupServerReference`, always first), its
job (`Up`, `JobReference`), an agent child's parent session (`Up`,
`BackupJobSessionReference`, Name "Parent session"), itself, its task sessions, and one
`Related` `RestorePointReference` per restore point it created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from exporter.simulator.estate import AGENT_BACKUP, AGENT_TYPES, REPLICA_SESSION
from exporter.simulator.job_model import SimJobSession, SimTaskSession
from exporter.simulator.links import Link

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Flavour:
    """What differs between backup and replica job sessions."""

    collection: str  # path under /api
    entity_type: str
    reference_type: str
    tasks_path: str
    tasks_type: str
    stop_link: bool


BACKUP_FLAVOUR = Flavour(
    "backupSessions",
    "BackupJobSession",
    "BackupJobSessionReference",
    "taskSessions",
    "BackupTaskSessionReferenceList",
    True,
)
REPLICA_FLAVOUR = Flavour(
    "replicaSessions",
    "ReplicaJobSession",
    "ReplicaJobSessionReference",
    "replicaTaskSessions",
    "ReplicaTaskSessionReferenceList",
    False,
)


def flavour(s: SimJobSession) -> Flavour:
    return REPLICA_FLAVOUR if s.session_type == REPLICA_SESSION else BACKUP_FLAVOUR


def ref_href(base: str, s: SimJobSession) -> str:
    return f"{base}/{flavour(s).collection}/{s.id}"


def entity_href(base: str, s: SimJobSession) -> str:
    return f"{ref_href(base, s)}?format=Entity"


def server_link(base: str, s: SimJobSession) -> Link:
    return Link(
        "Up",
        f"{base}/backupServers/{s.backup_server_uid}",
        "BackupServerReference",
        s.backup_server,
    )


def job_link(base: str, s: SimJobSession) -> Link:
    path = "agents/jobs" if s.job_type in AGENT_TYPES else "jobs"
    return Link("Up", f"{base}/{path}/{s.job_uid}", "JobReference", s.job_name)


def restore_point_name(moment: datetime, em_version: str) -> str:
    """v12 writes SQL Server's default text form (`Feb 19 2025  3:33AM`), v13 the time."""
    if em_version == "12":
        hour = moment.hour % 12 or 12
        half = "AM" if moment.hour < 12 else "PM"
        return (
            f"{_MONTHS[moment.month - 1]} {moment.day:2d} {moment.year} "
            f"{hour:2d}:{moment.minute:02d}{half}"
        )
    return moment.isoformat(sep=" ", timespec="microseconds")[:26].rstrip("0").rstrip(".")


def entity_links(base: str, s: SimJobSession, em_version: str) -> list[Link]:
    f = flavour(s)
    own = ref_href(base, s)
    links = [server_link(base, s), job_link(base, s)]
    if s.parent_id is not None:
        parent = f"{base}/{f.collection}/{s.parent_id}"
        links.append(Link("Up", parent, f.reference_type, "Parent session"))
    links.append(Link("Alternate", own, f.reference_type, s.name))
    links.append(Link("Down", f"{own}/{f.tasks_path}", f.tasks_type))
    if s.job_type == AGENT_BACKUP:
        links.append(
            Link("Alternate", f"{own}/agentManagementSessions", "BackupJobSessionReferenceList")
        )
    if f.stop_link:
        links.append(Link("Stop", f"{own}?action=stop"))
    if s.restore_points:
        name = restore_point_name(s.created, em_version)
        for index in range(s.restore_points):
            links.append(
                Link(
                    "Related",
                    f"{base}/restorePoints/{derived_guid(s.id, index)}",
                    "RestorePointReference",
                    name,
                )
            )
    return links


def derived_guid(guid: str, index: int) -> str:
    """A GUID of its own for the index-th thing a session made: cheaper than a hash, and
    unique per session (the last group counts on from the session's own)."""
    tail = (int(guid[24:], 16) + 0x9E3779B97F4A * (index + 1)) % (1 << 48)
    return f"{guid[:24]}{tail:012x}"


def reference_links(base: str, s: SimJobSession) -> list[Link]:
    f = flavour(s)
    return [
        server_link(base, s),
        job_link(base, s),
        Link("Alternate", entity_href(base, s), f.entity_type, s.name),
        Link("Down", f"{ref_href(base, s)}/{f.tasks_path}", f.tasks_type),
    ]


def task_ref_href(base: str, t: SimTaskSession) -> str:
    return f"{base}/backupTaskSessions/{t.id}"


def task_entity_links(base: str, t: SimTaskSession) -> list[Link]:
    s = t.session
    links = [
        server_link(base, s),
        Link("Up", ref_href(base, s), "BackupJobSessionReference", s.name),
        Link("Alternate", task_ref_href(base, t), "BackupTaskSessionReference", t.name),
    ]
    if t.ended is not None and t.result != "Failed":
        point = derived_guid(t.id, 0)
        links.append(
            Link(
                "Related",
                f"{base}/vmRestorePoints/{point}?format=Entity",
                "VmRestorePoint",
                f"{t.vm_name}@{t.created.isoformat(sep=' ', timespec='seconds')[:19]}",
            )
        )
    return links


def task_reference_links(base: str, t: SimTaskSession) -> list[Link]:
    s = t.session
    return [
        server_link(base, s),
        Link("Up", ref_href(base, s), "BackupJobSessionReference", s.name),
        Link("Alternate", f"{task_ref_href(base, t)}?format=Entity", "BackupTaskSession", t.name),
    ]
