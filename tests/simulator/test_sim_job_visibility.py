"""The EM shows job sessions as of its last data collection from each backup server."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from exporter.simulator import SimJobSession, SimulatedEM, SimulatorSettings

from .helpers import T0, ManualClock, get, logon, query_uids

HOSTS = ("vbr01.corp.local", "vbr02.corp.local")


def views(sessions: list[SimJobSession]) -> dict[str, SimJobSession]:
    return {s.id: s for s in sessions}


def collect_job_ends(em: SimulatedEM) -> set[datetime]:
    return {
        s.ended
        for s in em.sessions()
        if s.session_type == "CollectJob" and s.state != "Failed" and s.ended is not None
    }


def test_the_em_shows_each_server_as_of_its_last_collect_job(
    em: SimulatedEM, clock: ManualClock
) -> None:
    changed = 0
    for _ in range(24):  # six hours in quarter-hour steps
        collections = em.job_collections()
        assert set(collections) == set(HOSTS)
        ends = collect_job_ends(em)
        for at in collections.values():
            assert at is not None and at <= em.now()
            assert at in ends  # a CollectJob system session that did not fail ended then
            assert em.now() - at < timedelta(minutes=35)
        shown, truth = views(em.job_sessions()), views(em.job_sessions(uncollected=True))
        assert set(shown) <= set(truth)
        for s in shown.values():
            at = collections[s.backup_server]
            assert at is not None and s.created <= at
            assert s.ended is None or s.ended <= at
        for s in truth.values():
            at = collections[s.backup_server]
            assert at is not None
            if s.created > at:
                assert s.id not in shown  # created after the collection: not seen yet
                changed += 1
            elif s.id in shown and shown[s.id] != s:
                changed += 1  # seen, but as it was at the collection
                assert not shown[s.id].finished
                assert shown[s.id].progress <= s.progress
        clock.advance(minutes=15)
    assert changed > 0


def test_a_new_session_appears_at_the_next_collection(em: SimulatedEM, clock: ManualClock) -> None:
    for _ in range(200):
        truth = views(em.job_sessions(uncollected=True))
        shown = views(em.job_sessions())
        hidden = [s for s in truth.values() if s.id not in shown]
        if hidden:
            break
        clock.advance(minutes=1)
    else:
        pytest.fail("no session was created between two collections")
    target = hidden[0]
    host = target.backup_server
    before = em.job_collections()[host]
    while em.job_collections()[host] == before:
        assert target.id not in views(em.job_sessions())
        clock.advance(minutes=1)
    assert target.id in views(em.job_sessions())


def test_progress_stands_still_between_collections(em: SimulatedEM, clock: ManualClock) -> None:
    clock.set(T0.replace(hour=22, minute=20))  # Daily VM Backup runs from 22:00
    first = [s for s in em.job_sessions() if s.job_name == "Daily VM Backup" and not s.finished]
    assert first
    collected = em.job_collections()[first[0].backup_server]
    clock.advance(seconds=30)
    if em.job_collections()[first[0].backup_server] == collected:
        again = views(em.job_sessions())[first[0].id]
        assert again == first[0]
    truth = views(em.job_sessions(uncollected=True))[first[0].id]
    assert truth.progress > first[0].progress


def test_a_failed_collection_freezes_that_server(em: SimulatedEM, clock: ManualClock) -> None:
    for _ in range(10):
        failing = em.fail_next()
        assert failing is not None
        before = em.job_collections()
        clock.advance(minutes=16)
        failed = next(s for s in em.sessions() if s.id == failing)
        found = re.search(r"backup server (vbr0\d\.corp\.local)", failed.message)
        if failed.session_type == "CollectJob" and found:
            break
    else:
        pytest.fail("no collection could be made to fail")
    host = found.group(1)
    other = next(h for h in HOSTS if h != host)
    after = em.job_collections()
    assert after[other] != before[other]
    assert after[host] == before[host]  # the failed CollectJob refreshed nothing
    frozen_at = after[host]
    assert failed.ended is not None and frozen_at is not None and frozen_at < failed.ended


def test_immediate_visibility_shows_the_truth(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=2, job_visibility="immediate"), clock=clock)
    for _ in range(6):
        assert em.job_sessions() == em.job_sessions(uncollected=True)
        assert set(em.job_collections().values()) == {em.now()}
        clock.advance(minutes=7)
    em.set(job_visibility="collection")
    assert em.job_collections()["vbr01.corp.local"] != em.now()


def test_changes_by_hand_wait_for_a_collection_even_on_a_frozen_clock() -> None:
    em = SimulatedEM(SimulatorSettings(history_days=2, live=False), clock=ManualClock())
    added = em.add_job_session("Exchange Backup", created=T0 - timedelta(minutes=3))
    assert added.id not in views(em.job_sessions())
    assert views(em.job_sessions(uncollected=True))[added.id] == added
    collect_jobs = sum(s.session_type == "CollectJob" for s in em.sessions())
    collections = em.collect()
    assert set(collections.values()) == {em.now()}
    assert sum(s.session_type == "CollectJob" for s in em.sessions()) == collect_jobs + 2
    assert views(em.job_sessions())[added.id] == added

    finished = em.finish_job_session(added.id, result="Failed")
    assert views(em.job_sessions())[added.id].state == "Working"  # not collected yet
    em.collect("vbr02.corp.local")  # Exchange Backup is on vbr01
    assert views(em.job_sessions())[added.id].state == "Working"
    em.collect("vbr01.corp.local")
    assert views(em.job_sessions())[added.id] == finished
    # v12 keeps job-session times to the millisecond.
    ended = T0.replace(microsecond=123000)
    assert (finished.state, finished.result, finished.ended) == ("Stopped", "Failed", ended)

    em.remove_job_session(added.id)
    assert added.id in views(em.job_sessions())
    em.collect()
    assert added.id not in views(em.job_sessions())
    with pytest.raises(KeyError):
        em.finish_job_session(added.id)
    with pytest.raises(ValueError, match="unknown backup server"):
        em.collect("vbr99.corp.local")


def test_a_generated_running_session_finished_by_hand() -> None:
    clock = ManualClock(T0.replace(hour=22, minute=20))
    em = SimulatedEM(SimulatorSettings(history_days=1, live=False), clock=clock)
    em.collect()
    running = [s for s in em.job_sessions() if not s.finished and s.job_name == "Daily VM Backup"]
    assert running
    done = em.finish_job_session(running[0].id, result="Warning")
    em.collect()
    shown = views(em.job_sessions())[running[0].id]
    assert shown == done
    assert (shown.created, shown.progress, shown.restore_points) == (running[0].created, 100, 6)


def test_the_api_answers_what_the_em_has_collected(em: SimulatedEM) -> None:
    token = logon(em)
    added = em.add_job_session("SQL Servers Backup", state="Stopped", ended=em.now())
    assert added.id not in query_uids(em, token, "pageSize=1000")
    assert get(em, f"/api/backupSessions/{added.id}", token).status_code == 404
    em.collect()
    assert added.id in query_uids(em, token, "pageSize=1000")
    assert get(em, f"/api/backupSessions/{added.id}", token).status_code == 200
    assert set(query_uids(em, token, "pageSize=1000")) == {s.id for s in em.job_sessions()}
