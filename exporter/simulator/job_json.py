"""JSON of job sessions, task sessions and query results, in the key order real v12 and
v13 servers write: the derived type's field (IsRetry) first, then the base type's fields,
then Name, UID, Links, Href, Type. Every key goes through `k` (PascalCase or camelCase);
enumeration values stay PascalCase in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from exporter.simulator import job_links as J
from exporter.simulator.job_model import SimJobSession, SimTaskSession
from exporter.simulator.json_render import Json, Keys, links_json
from exporter.simulator.links import Link
from exporter.simulator.query import Paging
from exporter.simulator.timefmt import format_timestamp

# The Entities object of a QueryResult: one slot per queryable type, all null but the one
# asked for, in the order real servers write them (the misspelt "Enterpise" included).
ENTITY_SLOTS = (
    "Jobs",
    "FailoverPlans",
    "Backups",
    "Replicas",
    "Repositories",
    "RestorePoints",
    "VmRestorePoints",
    "VAppRestorePoints",
    "VmReplicaPoints",
    "BackupJobSessions",
    "ReplicaJobSessions",
    "ReplicaTaskSessions",
    "RestoreSessions",
    "HierarchyRoots",
    "BackupTaskSessions",
    "BackupServers",
    "ManagedServers",
    "EnterpiseRoles",
    "EnterpiseAccounts",
    "WanAccelerators",
    "CloudGateways",
    "CloudTenants",
    "CloudReplicas",
    "VCloudOrganizationConfigs",
    "BackupFiles",
    "VSphereSelfServiceConfigs",
    "CloudPublicIps",
    "CloudHardwarePlans",
    "CloudVmReplicaPoints",
    "AgentRestorePoints",
    "AgentBackupJob",
    "CloudGatewayPools",
    "CloudFailoverPlans",
    "ExternalRepositories",
    "VlanConfigurations",
    "CloudFailoverSessions",
    "AgentProtectionGroups",
    "DiscoveredComputers",
    "FileServers",
    "NASJobs",
    "CdpReplicas",
    "CdpReplicaVms",
    "CdpPolicies",
    "CdpReplicaSessions",
    "CdpReplicaTaskSessions",
    "VAppReplicaPoints",
    "VmCdpReplicas",
    "VAppCdpReplicas",
    "VAppCdpReplicaVms",
    "SystemSessions",
)


def _time(value: datetime | None, digits: int) -> str | None:
    return format_timestamp(value, digits) if value is not None else None


def job_session(k: Keys, base: str, s: SimJobSession, digits: int, em_version: str) -> Json:
    f = J.flavour(s)
    return {
        k("IsRetry"): s.is_retry,
        k("JobUid"): f"urn:veeam:Job:{s.job_uid}",
        k("JobName"): s.job_name,
        k("JobType"): s.job_type,
        k("CreationTimeUTC"): format_timestamp(s.created, digits),
        k("EndTimeUTC"): _time(s.ended, digits),
        k("State"): s.state,
        k("Result"): s.result,
        k("Progress"): s.progress,
        k("FailureMessage"): s.failure_message,
        k("Name"): s.name,
        k("UID"): s.uid,
        k("Links"): links_json(k, J.entity_links(base, s, em_version)),
        k("Href"): J.entity_href(base, s),
        k("Type"): f.entity_type,
    }


def job_reference(k: Keys, base: str, s: SimJobSession) -> Json:
    return {
        k("Links"): links_json(k, J.reference_links(base, s)),
        k("UID"): s.uid,
        k("Name"): s.name,
        k("Href"): J.ref_href(base, s),
        k("Type"): J.flavour(s).reference_type,
    }


def task_session(k: Keys, base: str, t: SimTaskSession, digits: int) -> Json:
    return {
        k("JobSessionUid"): t.session.uid,
        k("CreationTimeUTC"): format_timestamp(t.created, digits),
        k("EndTimeUTC"): _time(t.ended, digits),
        k("State"): t.state,
        k("Result"): t.result,
        k("Reason"): t.reason,
        k("TotalSize"): t.total_size,
        k("VmUid"): t.vm_uid,
        k("VmDisplayName"): t.vm_name,
        k("Name"): t.name,
        k("UID"): f"urn:veeam:BackupTaskSession:{t.id}",
        k("Links"): links_json(k, J.task_entity_links(base, t)),
        k("Href"): f"{J.task_ref_href(base, t)}?format=Entity",
        k("Type"): "BackupTaskSession",
    }


def task_reference(k: Keys, base: str, t: SimTaskSession) -> Json:
    return {
        k("Links"): links_json(k, J.task_reference_links(base, t)),
        k("UID"): f"urn:veeam:BackupTaskSession:{t.id}",
        k("Name"): t.name,
        k("Href"): J.task_ref_href(base, t),
        k("Type"): "BackupTaskSessionReference",
    }


def query_result(
    k: Keys,
    slot: str,
    entities: bool,
    items: list[Json],
    paging: Paging,
    links: Sequence[Link],
    *,
    null_when_empty: bool,
) -> Json:
    listed: Json | None = {k(slot): items} if items or not null_when_empty else None
    return {
        k("Refs"): None if entities else {k("Refs"): items},
        k("Entities"): (
            {k(name): (listed if name == slot else None) for name in ENTITY_SLOTS}
            if entities
            else None
        ),
        k("Resources"): None,
        k("Links"): None,
        k("PagingInfo"): {
            k("Links"): links_json(k, links),
            k("PageNum"): paging.page,
            k("PageSize"): paging.page_size,
            k("PagesCount"): paging.pages,
        },
    }
