"""The backup servers and jobs whose sessions the simulated EM collects.

Two estates: the demo estate, a hand-written small shop (ten jobs of mixed types on two
backup servers, one that fails now and then, one that runs nearly all day), and a generated
one of exactly N jobs for load tests. Job names, schedules, durations and rates are plausible
inventions; the job types and the parent/child families follow what real EMs answer.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

BACKUP = "Backup"
BACKUP_COPY = "BackupCopy"
IMMEDIATE_COPY = "ImmediateBackupCopy"
COPY_WORKER = "ImmediateBackupCopyWorker"
AGENT_BACKUP = "AgentBackup"
AGENT_MANAGEMENT = "AgentManagement"
NAS_BACKUP = "NasBackup"
REPLICA = "Replica"

BACKUP_SESSION = "BackupJobSession"
REPLICA_SESSION = "ReplicaJobSession"
SESSION_TYPES = (BACKUP_SESSION, REPLICA_SESSION)

# Jobs whose links point under /api/agents/jobs instead of /api/jobs.
AGENT_TYPES = frozenset({AGENT_BACKUP, AGENT_MANAGEMENT})
# Sessions that protect nothing themselves: no task sessions, no restore points.
CONTAINER_TYPES = frozenset({IMMEDIATE_COPY, AGENT_BACKUP})
# Sessions without RestorePointReference links: containers, file shares (real NAS sessions
# show none) and replicas (their points are replica points, linked from task sessions).
NO_RESTORE_POINTS = CONTAINER_TYPES | {NAS_BACKUP, REPLICA}

MAX_JOBS = 20_000
_NAMESPACE = uuid.UUID("8d2f4b6e-3c1a-4e57-9b0d-6a7c5e2f1b93")

# (rng, UTC midnight of the day) -> scheduled starts of the day
Starts = Callable[[random.Random, datetime], list[datetime]]


@dataclass(frozen=True, slots=True)
class BackupServer:
    name: str
    uid: str  # bare GUID, as in /api/backupServers/{uid}


@dataclass(frozen=True)
class JobSpec:
    """One job: what its sessions show, and (for scheduled jobs) how it runs."""

    uid: str  # bare GUID
    name: str
    job_type: str
    server: BackupServer
    objects: tuple[str, ...] = ()  # protected VMs, machines or shares: tasks, restore points
    parent: str | None = None  # uid of the parent job (copy workers, agent machines)
    starts: Starts | None = None  # None: runs only as part of its parent's runs
    median_seconds: float = 600.0
    spread: float = 0.35
    p_warning: float = 0.05
    p_failure: float = 0.03
    retries: int = 0
    retry_wait_seconds: float = 600.0
    p_retry_failure: float = 0.3
    sources: tuple[str, ...] = ()  # immediate copy: uids of the copied jobs
    children: tuple[str, ...] = ()  # uids of the child jobs (workers, agent machines)

    @property
    def session_type(self) -> str:
        return REPLICA_SESSION if self.job_type == REPLICA else BACKUP_SESSION

    def duration(self, rng: random.Random) -> float:
        seconds = rng.lognormvariate(math.log(self.median_seconds), self.spread)
        return min(max(seconds, self.median_seconds / 4), self.median_seconds * 4)


@dataclass(frozen=True)
class Estate:
    servers: tuple[BackupServer, ...]
    jobs: tuple[JobSpec, ...]
    by_uid: dict[str, JobSpec] = field(default_factory=dict)

    @staticmethod
    def of(servers: Sequence[BackupServer], jobs: Sequence[JobSpec]) -> Estate:
        return Estate(tuple(servers), tuple(jobs), {job.uid: job for job in jobs})

    def find(self, key: str) -> JobSpec:
        """A job by bare uid, `urn:veeam:Job:` uid or name (names without regard to case)."""
        wanted = key.rsplit(":", 1)[-1].lower()
        if wanted in self.by_uid:
            return self.by_uid[wanted]
        for job in self.jobs:
            if job.name.casefold() == key.casefold():
                return job
        raise KeyError(key)


def _uid(seed: int, what: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{seed}:{what}"))


def backup_servers(seed: int, names: Sequence[str]) -> list[BackupServer]:
    return [BackupServer(name, _uid(seed, f"server:{name}")) for name in names]


# Schedules. Sessions start a few seconds after the scheduled minute, as VBR starts them.


def daily(hour: int, minute: int = 0) -> Starts:
    def starts(rng: random.Random, day: datetime) -> list[datetime]:
        return [day + timedelta(hours=hour, minutes=minute, seconds=rng.uniform(1, 20))]

    return starts


def every(hours: int, first_hour: int = 0) -> Starts:
    def starts(rng: random.Random, day: datetime) -> list[datetime]:
        return [
            day + timedelta(hours=h, seconds=rng.uniform(1, 20))
            for h in range(first_hour, 24, hours)
        ]

    return starts


def weekly(weekday: int, hour: int) -> Starts:
    def starts(rng: random.Random, day: datetime) -> list[datetime]:
        if day.weekday() != weekday:
            return []
        return [day + timedelta(hours=hour, seconds=rng.uniform(1, 20))]

    return starts


def per_day(count: float, phase_seconds: float) -> Starts:
    """`count` runs a day, evenly spaced from a per-job phase."""
    spacing = 86400.0 / count

    def starts(rng: random.Random, day: datetime) -> list[datetime]:
        first = phase_seconds % spacing
        slots = int((86400.0 - first) // spacing) + 1
        out = []
        for slot in range(slots):
            offset = first + slot * spacing
            if offset < 86400.0:
                out.append(day + timedelta(seconds=offset + rng.uniform(1, 20)))
        return out

    return starts


def demo_estate(seed: int, hosts: Sequence[str]) -> Estate:
    """Ten jobs on (up to) two backup servers; child jobs make fifteen job names."""
    servers = backup_servers(seed, hosts)
    first, second = servers[0], servers[1 % len(servers)]

    def uid(name: str) -> str:
        return _uid(seed, f"job:{name}")

    def vms(*names: str) -> tuple[str, ...]:
        return tuple(names)

    daily_vm = JobSpec(
        uid("Daily VM Backup"),
        "Daily VM Backup",
        BACKUP,
        first,
        vms("app01", "app02", "dc01", "dc02", "file01", "print01"),
        starts=daily(22),
        median_seconds=45 * 60,
        p_warning=0.08,
        p_failure=0.04,
        retries=3,
        retry_wait_seconds=600,
    )
    sql = JobSpec(
        uid("SQL Servers Backup"),
        "SQL Servers Backup",
        BACKUP,
        first,
        vms("sql01", "sql02", "sql03"),
        starts=every(4, 2),
        median_seconds=9 * 60,
        p_warning=0.05,
        p_failure=0.02,
        retries=2,
        retry_wait_seconds=300,
    )
    # The job that fails now and then: a third of its first attempts fail, and a failed
    # retry is as likely as not, so some nights end Failed after both retries.
    exchange = JobSpec(
        uid("Exchange Backup"),
        "Exchange Backup",
        BACKUP,
        first,
        vms("exch01", "exch02"),
        starts=daily(1),
        median_seconds=80 * 60,
        p_warning=0.1,
        p_failure=0.33,
        retries=2,
        retry_wait_seconds=900,
        p_retry_failure=0.5,
    )
    copy_name = "Copy to DR"
    workers = [
        JobSpec(
            uid(f"{copy_name}\\{source.name}"),
            f"{copy_name}\\{source.name}",
            COPY_WORKER,
            first,
            source.objects,
            parent=uid(copy_name),
            p_warning=0.04,
            p_failure=0.01,
        )
        for source in (daily_vm, sql)
    ]
    # The long-running one: an immediate copy parent session spans nearly the whole day.
    copy = JobSpec(
        uid(copy_name),
        copy_name,
        IMMEDIATE_COPY,
        first,
        starts=daily(0, 5),
        median_seconds=23 * 3600,
        spread=0.01,
        sources=(daily_vm.uid, sql.uid),
        children=tuple(w.uid for w in workers),
    )
    nas = JobSpec(
        uid("File Share Backup"),
        "File Share Backup",
        NAS_BACKUP,
        first,
        ("\\\\file01.corp.local\\Projects",),
        starts=daily(20),
        median_seconds=25 * 60,
        p_warning=0.1,
        p_failure=0.02,
        retries=1,
    )
    agent_name = "Workstations Agent Backup"
    machines = ("ws01.corp.local", "ws02.corp.local", "ws03.corp.local")
    agents = [
        JobSpec(
            uid(f"{agent_name} - {machine}"),
            f"{agent_name} - {machine}",
            AGENT_MANAGEMENT,
            second,
            (machine,),
            parent=uid(agent_name),
            median_seconds=20 * 60,
            p_warning=0.1,
            p_failure=0.05,
        )
        for machine in machines
    ]
    agent = JobSpec(
        uid(agent_name),
        agent_name,
        AGENT_BACKUP,
        second,
        starts=daily(12, 30),
        retries=2,
        retry_wait_seconds=1800,
        children=tuple(a.uid for a in agents),
    )
    replica = JobSpec(
        uid("Web Farm Replica"),
        "Web Farm Replica",
        REPLICA,
        second,
        vms("web01", "web02"),
        starts=every(6, 3),
        median_seconds=12 * 60,
        p_warning=0.05,
        p_failure=0.03,
        retries=1,
    )
    weekly_job = JobSpec(
        uid("Weekly Archive Backup"),
        "Weekly Archive Backup",
        BACKUP,
        second,
        vms("archive01"),
        starts=weekly(5, 2),
        median_seconds=3 * 3600,
        p_failure=0.05,
        retries=1,
        retry_wait_seconds=1800,
    )
    linux = JobSpec(
        uid("Linux Servers Backup"),
        "Linux Servers Backup",
        BACKUP,
        second,
        vms("lnx01", "lnx02", "lnx03", "lnx04"),
        starts=daily(21),
        median_seconds=30 * 60,
        p_warning=0.15,
        p_failure=0.03,
        retries=2,
    )
    offsite = JobSpec(
        uid("Offsite Backup Copy"),
        "Offsite Backup Copy",
        BACKUP_COPY,
        second,
        linux.objects,
        starts=daily(6),
        median_seconds=2 * 3600,
        p_warning=0.05,
        p_failure=0.03,
    )
    jobs = [daily_vm, sql, exchange, copy, *workers, nas, agent, *agents, replica]
    jobs += [weekly_job, linux, offsite]
    return Estate.of(servers, jobs)


# One block of the generated estate: 20 jobs of mixed types, families included.
_BLOCK = 20


def generated_estate(seed: int, hosts: Sequence[str], count: int, runs_per_day: float) -> Estate:
    """Exactly `count` jobs with backup job sessions (children included), spread over the
    backup servers, each running `runs_per_day` times a day; plus one replica job per 20."""
    servers = backup_servers(seed, hosts)
    rng = random.Random(f"{seed}|estate|{count}")
    spacing = 86400.0 / runs_per_day
    # Each run fits well inside its slot, so runs of one job rarely overlap.
    median = min(3600.0, spacing * 0.25)
    jobs: list[JobSpec] = []

    def server(number: int) -> BackupServer:
        return servers[number % len(servers)]

    def scheduled(number: int, name: str, job_type: str, **kw: object) -> JobSpec:
        return JobSpec(
            _uid(seed, f"job:{number}"),
            name,
            job_type,
            server(number),
            starts=per_day(runs_per_day, rng.uniform(0, spacing)),
            median_seconds=median,
            **kw,  # type: ignore[arg-type]
        )

    def child(
        number: int, name: str, job_type: str, parent: str, objects: tuple[str, ...]
    ) -> JobSpec:
        return JobSpec(
            _uid(seed, f"job:{number}"),
            name,
            job_type,
            server(number),
            objects,
            parent=parent,
            median_seconds=median / 2,
        )

    number = 0
    while number < count:
        block_left = count - number
        start = number + 1
        if block_left < _BLOCK:
            for n in range(start, count + 1):
                jobs.append(_plain(scheduled, n))
            break
        plain = [_plain(scheduled, n) for n in range(start, start + 12)]
        jobs += plain
        jobs.append(
            scheduled(
                start + 12,
                f"Backup Copy Job {start + 12:05d}",
                BACKUP_COPY,
                objects=plain[0].objects,
            )
        )
        jobs.append(
            scheduled(
                start + 13,
                f"File Share Job {start + 13:05d}",
                NAS_BACKUP,
                objects=(f"\\\\nas{start + 13:05d}.corp.local\\Data",),
            )
        )
        copy_number = start + 14
        copy_uid = _uid(seed, f"job:{copy_number}")
        copy_name = f"Immediate Copy {copy_number:05d}"
        workers = [
            child(
                copy_number + 1 + i, f"{copy_name}\\{src.name}", COPY_WORKER, copy_uid, src.objects
            )
            for i, src in enumerate(plain[:2])
        ]
        copy = scheduled(
            copy_number,
            copy_name,
            IMMEDIATE_COPY,
            sources=tuple(src.uid for src in plain[:2]),
            children=tuple(w.uid for w in workers),
        )
        # The parent spans nearly its whole slot, so its sources' runs land inside it.
        jobs.append(_with_median(copy, spacing * 0.9))
        jobs += workers
        agent_number = start + 17
        agent_uid = _uid(seed, f"job:{agent_number}")
        agent_name = f"Agent Job {agent_number:05d}"
        machines = [
            child(
                agent_number + 1 + i,
                f"{agent_name} - host{agent_number:05d}-{i + 1}.corp.local",
                AGENT_MANAGEMENT,
                agent_uid,
                (f"host{agent_number:05d}-{i + 1}.corp.local",),
            )
            for i in range(2)
        ]
        jobs.append(
            scheduled(
                agent_number,
                agent_name,
                AGENT_BACKUP,
                retries=1,
                children=tuple(m.uid for m in machines),
            )
        )
        jobs += machines
        number += _BLOCK
    for r in range(1, count // _BLOCK + 1):
        number = count + r
        jobs.append(
            scheduled(
                number, f"Replica Job {r:05d}", REPLICA, objects=(f"vm{number:05d}",), retries=1
            )
        )
    return Estate.of(servers, jobs)


def _plain(scheduled: Callable[..., JobSpec], number: int) -> JobSpec:
    return scheduled(
        number,
        f"Backup Job {number:05d}",
        BACKUP,
        objects=(f"vm{number:05d}a", f"vm{number:05d}b"),
        retries=1,
        retry_wait_seconds=300,
    )


def _with_median(job: JobSpec, seconds: float) -> JobSpec:
    return replace(job, median_seconds=seconds, spread=0.01)


def build_estate(seed: int, hosts: Sequence[str], jobs: int | None, runs_per_day: float) -> Estate:
    if jobs is None:
        return demo_estate(seed, hosts)
    if jobs == 0:
        return Estate.of(backup_servers(seed, hosts), [])
    return generated_estate(seed, hosts, jobs, runs_per_day)
