"""The job estate and its generated sessions: types, families, retries, running sessions,
determinism and the generated estate's size."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import timedelta

import pytest

from exporter.simulator import SimJobSession, SimulatedEM, SimulatorSettings

from .helpers import T0, ManualClock

ORDER = {"Success": 0, "Warning": 1, "Failed": 2}


@pytest.fixture(scope="module")
def month() -> SimulatedEM:
    """The demo estate with a month of history, frozen at T0 (sessions shown as collected)."""
    return SimulatedEM(SimulatorSettings(live=False), clock=ManualClock())


@pytest.fixture(scope="module")
def sessions(month: SimulatedEM) -> list[SimJobSession]:
    return month.job_sessions()


def by_job(sessions: list[SimJobSession]) -> dict[str, list[SimJobSession]]:
    out: dict[str, list[SimJobSession]] = defaultdict(list)
    for s in sorted(sessions, key=lambda s: s.created):
        out[s.job_name].append(s)
    return out


def test_the_demo_estate_is_a_small_shop_of_mixed_job_types(month: SimulatedEM) -> None:
    jobs = month.jobs()
    top = [j for j in jobs if j.parent_uid is None]
    assert len(top) == 10
    assert {j.job_type for j in jobs} == {
        "Backup",
        "BackupCopy",
        "ImmediateBackupCopy",
        "ImmediateBackupCopyWorker",
        "AgentBackup",
        "AgentManagement",
        "NasBackup",
        "Replica",
    }
    assert {j.backup_server for j in jobs} == {"vbr01.corp.local", "vbr02.corp.local"}
    assert len({j.uid for j in jobs}) == len(jobs) == 15
    replica = [j for j in jobs if j.session_type == "ReplicaJobSession"]
    assert [j.job_type for j in replica] == ["Replica"]
    by_uid = {j.uid: j for j in jobs}
    for child in jobs:
        if child.parent_uid is not None:
            assert by_uid[child.parent_uid].job_type in ("ImmediateBackupCopy", "AgentBackup")


def test_a_month_of_sessions_from_every_job(
    month: SimulatedEM, sessions: list[SimJobSession]
) -> None:
    names = {j.name for j in month.jobs() if j.session_type == "BackupJobSession"}
    assert {s.job_name for s in sessions} == names
    assert 600 <= len(sessions) <= 900
    assert min(s.created for s in sessions) >= T0 - timedelta(days=30)
    assert max(s.created for s in sessions) <= T0
    replicas = month.job_sessions("ReplicaJobSession")
    assert {s.job_type for s in replicas} == {"Replica"}
    assert 100 <= len(replicas) <= 150  # four a day, some retried
    assert all(s.session_type == "ReplicaJobSession" for s in replicas)
    results = Counter(s.result for s in sessions if s.finished)
    assert set(results) == {"Success", "Warning", "Failed"}
    assert results["Success"] > results["Warning"] + results["Failed"]


def test_one_job_fails_now_and_then_and_its_retries_often_fix_it(
    sessions: list[SimJobSession],
) -> None:
    exchange = by_job(sessions)["Exchange Backup"]
    results = Counter((s.is_retry, s.result) for s in exchange)
    assert results[(False, "Failed")] >= 5
    assert results[(True, "Success")] >= 2
    runs = [s for s in exchange if not s.is_retry]
    assert 28 <= len(runs) <= 31  # nightly


def test_every_retry_follows_a_failed_session_of_the_same_job(
    month: SimulatedEM, sessions: list[SimJobSession]
) -> None:
    retries = {j.name: 0 for j in month.jobs()}
    for job, items in by_job(sessions).items():
        attempt = 0
        for previous, current in itertools.pairwise(items):
            if not current.is_retry:
                attempt = 0
                continue
            attempt += 1
            retries[job] = max(retries[job], attempt)
            assert previous.result == "Failed" and previous.job_uid == current.job_uid
            assert previous.ended is not None and previous.ended <= current.created
            assert current.created - previous.ended <= timedelta(hours=1)
            assert current.name != previous.name
    assert retries["Exchange Backup"] == 2  # its retry count, reached on some nights
    assert retries["Offsite Backup Copy"] == 0  # a job without retries is never retried


def test_an_immediate_copy_runs_a_parent_all_day_and_a_worker_per_source_run(
    sessions: list[SimJobSession],
) -> None:
    jobs = by_job(sessions)
    parents = jobs["Copy to DR"]
    assert all(p.job_type == "ImmediateBackupCopy" and p.progress == 0 for p in parents)
    assert all(
        p.ended is None or p.ended - p.created > timedelta(hours=20) for p in parents
    )  # the long-running job
    assert parents[-1].ended is None  # running now
    for source in ("Daily VM Backup", "SQL Servers Backup"):
        workers = jobs[f"Copy to DR\\{source}"]
        assert workers and all(w.job_type == "ImmediateBackupCopyWorker" for w in workers)
        assert len({w.job_uid for w in workers}) == 1
        assert workers[0].job_uid not in {p.job_uid for p in parents}
        for w in workers:
            assert w.parent_id is None  # workers carry no parent link
            inside = [p for p in parents if p.created <= w.created]
            parent = inside[-1]
            assert parent.ended is None or (w.ended is not None and w.ended <= parent.ended)
    for parent in parents:
        if parent.ended is None:
            continue
        end = parent.ended
        kids = [
            w
            for name, items in jobs.items()
            if name.startswith("Copy to DR\\")
            for w in items
            if parent.created <= w.created <= end
        ]
        expected = max((ORDER[k.result] for k in kids), default=0)
        assert ORDER[parent.result] == expected


def test_an_agent_job_runs_a_parent_and_a_child_per_machine(
    sessions: list[SimJobSession],
) -> None:
    parents = {s.id: s for s in sessions if s.job_type == "AgentBackup"}
    children = [s for s in sessions if s.job_type == "AgentManagement"]
    assert parents and children
    family: dict[str, list[SimJobSession]] = defaultdict(list)
    for child in children:
        assert child.parent_id in parents
        assert child.job_name.startswith("Workstations Agent Backup - ws0")
        family[child.parent_id].append(child)
    for parent_id, kids in family.items():
        parent = parents[parent_id]
        assert all(k.created >= parent.created and k.is_retry == parent.is_retry for k in kids)
        if parent.finished:
            assert ORDER[parent.result] == max(ORDER[k.result] for k in kids)
            assert all(k.ended is not None and k.ended <= parent.ended for k in kids)  # type: ignore[operator]
        if not parent.is_retry:
            assert len(kids) == 3
    # A retry reruns only the machines that failed.
    for parent in (p for p in parents.values() if p.is_retry):
        assert 1 <= len(family[parent.id]) < 3 or parent.result == "Failed"


def test_finished_and_running_sessions_look_as_real_ones(sessions: list[SimJobSession]) -> None:
    for s in sessions:
        assert s.name == f"{s.job_name}@{s.created:%Y-%m-%d %H:%M:%S}"
        assert s.failure_message is None
        if s.finished:
            assert s.ended is not None and s.result in ORDER
            assert s.progress == (0 if s.job_type == "ImmediateBackupCopy" else 100)
        else:
            assert (s.state, s.result, s.ended) == ("Working", "None", None)
            assert 0 <= s.progress <= 99
        if s.job_type in ("NasBackup", "ImmediateBackupCopy", "AgentBackup") or s.result in (
            "Failed",
            "None",
        ):
            assert s.restore_points == 0
    backups = [s for s in sessions if s.job_name == "Daily VM Backup" and s.result == "Success"]
    assert {s.restore_points for s in backups} == {6}


def test_running_sessions_progress_as_time_passes() -> None:
    clock = ManualClock(T0.replace(hour=22, minute=10))  # Daily VM Backup started at 22:00
    em = SimulatedEM(SimulatorSettings(history_days=1, job_visibility="immediate"), clock=clock)
    seen = []
    for _ in range(4):
        running = [
            s for s in em.job_sessions() if s.job_name == "Daily VM Backup" and not s.finished
        ]
        if not running:
            break
        seen.append(running[0].progress)
        clock.advance(minutes=8)
    assert len(seen) >= 2 and seen == sorted(seen) and seen[0] < seen[-1]
    assert em.job_sessions()[0].created <= em.now()


def test_same_seed_same_sessions_other_seed_other_sessions() -> None:
    def make(seed: int) -> list[SimJobSession]:
        return SimulatedEM(
            SimulatorSettings(seed=seed, live=False), clock=ManualClock()
        ).job_sessions()

    first, again, other = make(7), make(7), make(8)
    assert first == again
    assert {s.id for s in first}.isdisjoint({s.id for s in other})
    assert {s.job_uid for s in first}.isdisjoint({s.job_uid for s in other})


def test_v13_names_carry_the_fraction() -> None:
    em = SimulatedEM(
        SimulatorSettings(live=False, em_version="13", history_days=1), clock=ManualClock()
    )
    for s in em.job_sessions():
        stamp = s.created.isoformat(sep=" ", timespec="microseconds")[:26].rstrip("0").rstrip(".")
        assert s.name == f"{s.job_name}@{stamp}"


def test_one_backup_server_holds_every_job() -> None:
    em = SimulatedEM(SimulatorSettings(backup_servers=1, live=False), clock=ManualClock())
    assert {j.backup_server for j in em.jobs()} == {"vbr01.corp.local"}
    assert {s.backup_server for s in em.job_sessions()} == {"vbr01.corp.local"}


def test_no_jobs() -> None:
    em = SimulatedEM(SimulatorSettings(jobs=0, live=False, history_days=1), clock=ManualClock())
    assert em.jobs() == [] and em.job_sessions() == []
    assert em.sessions()  # the system sessions are still there


def test_a_generated_estate_has_exactly_the_jobs_asked_for() -> None:
    em = SimulatedEM(
        SimulatorSettings(jobs=47, job_runs_per_day=6, history_days=2, live=False),
        clock=ManualClock(),
    )
    jobs = em.jobs()
    backup = [j for j in jobs if j.session_type == "BackupJobSession"]
    assert len(backup) == 47
    assert len([j for j in jobs if j.job_type == "Replica"]) == 2  # one per 20
    sessions = em.job_sessions()
    assert {s.job_uid for s in sessions} == {j.uid for j in backup}
    assert {s.backup_server for s in sessions} == {"vbr01.corp.local", "vbr02.corp.local"}
    runs = Counter(s.job_name for s in sessions if not s.is_retry)
    plain = [j.name for j in backup if j.job_type == "Backup"]
    assert all(10 <= runs[name] <= 13 for name in plain)  # 6 a day for 2 days


def test_the_large_estate_for_the_bench() -> None:
    """1,000 jobs and about 60,000 sessions in a 48-hour window (the bench's load)."""
    em = SimulatedEM(
        SimulatorSettings(jobs=1000, job_runs_per_day=30, history_days=2, live=False),
        clock=ManualClock(),
    )
    sessions = em.job_sessions()
    assert len({s.job_uid for s in sessions}) == 1000
    in_window = [s for s in sessions if s.created >= T0 - timedelta(hours=48)]
    assert 55_000 <= len(in_window) <= 66_000
