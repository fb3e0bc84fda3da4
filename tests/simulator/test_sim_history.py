"""The generated history: volume, mix, determinism, the 30-day window and live activity."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest

from exporter.simulator import SimulatedEM, SimulatorSettings

from .helpers import T0, ManualClock

KNOWN_STATES = {"InProgress", "CompletedSuccessfully", "CompletedWarning", "Failed"}


def test_a_month_for_two_servers_is_realistic_in_volume_and_mix() -> None:
    started = time.monotonic()
    em = SimulatedEM(SimulatorSettings(), clock=ManualClock())
    sessions = em.sessions()
    assert time.monotonic() - started < 1.0, "generation must stay fast"

    assert 6000 <= len(sessions) <= 7000
    types = Counter(s.session_type for s in sessions)
    assert 5700 <= types["CollectJob"] <= 5780  # 2 servers x 96 a day x 30 days
    assert 25 <= types["DatabaseMaintenance"] <= 31
    assert 25 <= types["LicAutoUpdate"] <= 31
    assert 25 <= types["SyncCheckForProductUpdatesOption"] <= 31
    assert 500 <= types["HistoryCollectJob"] <= 720
    assert 100 <= types["CatalogReplicationJob"] <= 200
    assert 90 <= types["CatalogCrawlJob"] <= 130
    assert types["SecurityScopesRebuild"] + types["CatalogConsolidation"] >= 1

    states = Counter(s.state for s in sessions)
    assert set(states) <= KNOWN_STATES
    assert 0.01 <= states["CompletedWarning"] / len(sessions) <= 0.06
    assert 0.005 <= states["Failed"] / len(sessions) <= 0.04
    canceled = sum(s.canceled for s in sessions)
    assert 0.003 <= canceled / len(sessions) <= 0.02


def test_messages_are_realistic() -> None:
    sessions = SimulatedEM(SimulatorSettings(), clock=ManualClock()).sessions()
    failed = [s for s in sessions if s.state == "Failed" and not s.canceled]
    assert any(
        s.message.startswith("Failed to collect data from backup server vbr0") for s in failed
    )
    assert all(s.message for s in failed)
    assert all(s.message == "" for s in sessions if s.state == "CompletedSuccessfully")
    assert all(s.message for s in sessions if s.state == "CompletedWarning")
    assert all(
        s.state == "Failed" and "stopped by user" in s.message for s in sessions if s.canceled
    )


def test_names_carry_the_creation_time() -> None:
    sessions = SimulatedEM(SimulatorSettings(history_days=1), clock=ManualClock()).sessions()
    for s in sessions:
        stamp = s.created.strftime("%Y-%m-%d %H:%M:%S.%f")
        assert s.name.endswith(" @" + stamp)
    collect = [s for s in sessions if s.session_type == "CollectJob"]
    assert all(s.name.startswith("Collect Job @") for s in collect)


def test_same_seed_same_sessions_other_seed_other_sessions() -> None:
    first = SimulatedEM(SimulatorSettings(seed=7), clock=ManualClock()).sessions()
    again = SimulatedEM(SimulatorSettings(seed=7), clock=ManualClock()).sessions()
    other = SimulatedEM(SimulatorSettings(seed=8), clock=ManualClock()).sessions()
    assert first == again
    assert {s.id for s in first}.isdisjoint({s.id for s in other})


def test_history_days_bounds_the_oldest_session() -> None:
    sessions = SimulatedEM(SimulatorSettings(history_days=3), clock=ManualClock()).sessions()
    assert min(s.created for s in sessions) >= T0 - timedelta(days=3)
    assert min(s.created for s in sessions) < T0 - timedelta(days=3) + timedelta(minutes=15)
    assert max(s.created for s in sessions) <= T0


def test_many_backup_servers_scale_the_answer() -> None:
    settings = SimulatorSettings(backup_servers=30, history_days=1)
    em = SimulatedEM(settings, clock=ManualClock())
    collect = [s for s in em.sessions() if s.session_type == "CollectJob"]
    assert 30 * 95 <= len(collect) <= 30 * 97
    assert len(em.backup_servers) == 30


def test_sessions_older_than_thirty_days_disappear(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=30), clock=clock)
    before = {s.id: s for s in em.sessions()}
    clock.advance(days=1)
    after = {s.id: s for s in em.sessions()}
    horizon = clock() - timedelta(days=30)
    gone = set(before) - set(after)
    assert gone, "a day later the oldest day must have left the window"
    assert all(before[i].created < horizon for i in gone)
    assert all(s.created >= horizon for s in after.values())
    assert len(after) - len(set(after) - set(before)) == len(before) - len(gone)


def test_added_sessions_obey_the_window_too(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=0), clock=clock)
    old = em.add_session("CollectJob", created=T0 - timedelta(days=31), state="Failed")
    edge = em.add_session("CollectJob", created=T0 - timedelta(days=30), state="Failed")
    ids = {s.id for s in em.sessions()}
    assert old.id not in ids
    assert edge.id in ids


def test_live_sessions_start_run_and_finish_with_the_clock(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=1, live=True), clock=clock)
    known = {s.id for s in em.sessions()}
    clock.advance(minutes=16)
    new = [s for s in em.sessions() if s.id not in known and s.session_type == "CollectJob"]
    assert new, "a CollectJob runs every 15 minutes per server"
    target = new[0]

    clock.set(target.created)
    running = next(s for s in em.sessions() if s.id == target.id)
    assert running.state == "InProgress"
    assert running.ended is None
    assert running.result == "InProgress"

    clock.set(target.created - timedelta(microseconds=1))
    assert target.id not in {s.id for s in em.sessions()}

    clock.set(target.created + timedelta(minutes=10))
    finished = next(s for s in em.sessions() if s.id == target.id)
    assert finished.state in {"CompletedSuccessfully", "CompletedWarning", "Failed"}
    assert finished.ended is not None and finished.ended > finished.created


def test_live_off_freezes_the_answer(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=1, live=False), clock=clock)
    before = em.sessions()
    clock.advance(hours=2)
    assert em.sessions() == before
    assert em.now() == T0


def test_speed_compresses_the_live_schedule_and_never_moves_the_clock_ahead(
    clock: ManualClock,
) -> None:
    # The shown clock used to run `speed` times as fast as the base clock, so at speed 20
    # every live session was dated hours ahead of real time.
    em = SimulatedEM(SimulatorSettings(history_days=0, speed=60), clock=clock)
    clock.advance(seconds=30)  # half an hour of schedule: two CollectJobs per server
    assert em.now() == T0 + timedelta(seconds=30)
    collects = [s for s in em.sessions() if s.session_type == "CollectJob"]
    assert len(collects) >= 2 * len(em.backup_servers)
    for s in collects:
        assert T0 <= s.created <= em.now()
        assert s.ended is None or s.ended <= em.now()
        # A CollectJob lasts at most 420 s of schedule: 7 s at 60x.
        assert s.ended is None or s.ended - s.created <= timedelta(seconds=7)
    em.set(speed=1)
    clock.advance(seconds=10)
    assert em.now() == T0 + timedelta(seconds=40)
    em.set(live=False)
    clock.advance(hours=1)
    assert em.now() == T0 + timedelta(seconds=40)


def test_no_session_is_dated_after_the_real_now_after_hours_of_acceleration(
    clock: ManualClock,
) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=1, speed=20), clock=clock)
    live_seen = set()
    for step in range(180):  # three real hours at 20x, looked at every real minute
        clock.advance(minutes=1)
        if step == 90:
            em.set(speed=200)  # a change of speed keeps what was already shown
        now = clock()
        assert em.now() == now
        for s in em.sessions():
            assert s.created <= now, s
            assert s.ended is None or s.ended <= now, s
            if s.created > T0:
                live_seen.add(s.id)
    # 90 min at 20x and 90 min at 200x: 1800 + 18,000 schedule minutes of CollectJobs.
    assert len(live_seen) > 2 * (1800 + 18_000) // 15 * 0.9


def test_history_ends_at_the_start_and_is_shown_as_generated(clock: ManualClock) -> None:
    slow = SimulatedEM(SimulatorSettings(history_days=2, speed=1, live=False), clock=clock)
    fast = SimulatedEM(SimulatorSettings(history_days=2, speed=20, live=False), clock=clock)
    assert slow.sessions() == fast.sessions()
    assert max(s.created for s in fast.sessions()) <= T0


def test_live_session_names_carry_the_shown_start(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=0, speed=60), clock=clock)
    clock.advance(seconds=30)
    sessions = em.sessions()
    assert sessions
    for s in sessions:
        assert s.name.endswith(" @" + s.created.isoformat(sep=" ", timespec="microseconds")[:26])


def test_add_finish_remove(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=0), clock=clock)
    added = em.add_session("DatabaseMaintenance")
    assert added.state == "InProgress" and added.ended is None and added.created == T0
    assert added.name.startswith("Database Maintenance @")
    assert [s.id for s in em.sessions()] == [added.id]

    clock.advance(seconds=90)
    done = em.finish_session(added.id, state="Failed", message="boom", canceled=True)
    assert done.ended == T0 + timedelta(seconds=90)
    assert (done.state, done.result, done.message, done.canceled) == (
        "Failed",
        "Failed",
        "boom",
        True,
    )

    em.remove_session(added.id)
    assert added.id not in {s.id for s in em.sessions()}
    with pytest.raises(KeyError):
        em.remove_session(added.id)
    with pytest.raises(KeyError):
        em.finish_session(added.id)


def test_added_session_is_shown_exactly_as_given(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=0), clock=clock)
    s = em.add_session("FutureJobType", state="Exploded", result="Weird", message="x")
    assert (s.session_type, s.state, s.result, s.ended) == (
        "FutureJobType",
        "Exploded",
        "Weird",
        None,
    )


def test_a_generated_running_session_can_be_finished_by_hand(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=1), clock=clock)
    known = {s.id for s in em.sessions()}
    clock.advance(minutes=16)
    target = next(s for s in em.sessions() if s.id not in known)
    clock.set(target.created)
    done = em.finish_session(target.id, state="CompletedWarning", message="by hand")
    assert done.ended == target.created and done.state == "CompletedWarning"
    clock.advance(hours=1)
    assert next(s for s in em.sessions() if s.id == target.id).message == "by hand"


def test_result_vocabulary_and_fraction_digits_shape_the_records(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=1), clock=clock)
    em.add_session("CollectJob")
    em.set(result_vocabulary="short", fraction_digits=3)
    sessions = em.sessions()
    assert {s.result for s in sessions} <= {"Success", "Warning", "Failed", "None"}
    mapping = {"CompletedSuccessfully": "Success", "CompletedWarning": "Warning"}
    mapping |= {"Failed": "Failed", "InProgress": "None"}
    assert all(mapping[s.state] == s.result for s in sessions)
    assert all(s.created.microsecond % 1000 == 0 for s in sessions)


@pytest.mark.parametrize(
    ("knob", "value"),
    [("fraction_digits", 8), ("json_casing", "snake"), ("speed", 0), ("latency", -1)],
)
def test_bad_knobs_are_refused(knob: str, value: object) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=0), clock=ManualClock())
    with pytest.raises(ValueError, match=knob):
        em.set(**{knob: value})


def test_startup_only_settings_cannot_change_at_run_time() -> None:
    em = SimulatedEM(SimulatorSettings(history_days=0), clock=ManualClock())
    for knob in ("seed", "backup_servers", "tls", "port"):
        with pytest.raises(ValueError, match="only be set"):
            em.set(**{knob: 1})
    with pytest.raises(ValueError, match="unknown"):
        em.set(colour="blue")


def test_bad_settings_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="history_days"):
        SimulatedEM(SimulatorSettings(history_days=31))
    with pytest.raises(ValueError, match="fraction_digits"):
        SimulatedEM(SimulatorSettings(fraction_digits=-1))


def test_a_live_session_finished_by_hand_keeps_its_shown_start(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=0, speed=60), clock=clock)
    clock.advance(seconds=30)
    shown = em.sessions()[0]
    finished = em.finish_session(shown.id, state="Failed", message="by hand")
    assert finished.created == shown.created and finished.name == shown.name
    assert finished.ended == clock()
