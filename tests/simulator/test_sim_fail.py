"""Failing a generated session on purpose: /_sim/fail, fail_next() and fail_every."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from exporter.simulator import SimulatedEM, SimulatorSettings

from .helpers import T0, ManualClock


def _finished(em: SimulatedEM, session_id: str) -> str | None:
    for s in em.sessions():
        if s.id == session_id:
            return None if s.ended is None else s.state
    return None


def test_fail_next_fails_the_next_session_to_finish(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=0, speed=20), clock=clock)
    failing = em.fail_next()
    assert failing is not None
    before = {s.id: s for s in em.sessions()}
    assert failing not in before or before[failing].ended is None
    for _ in range(600):  # at 20x a CollectJob per server ends every 45 s at the latest
        clock.advance(seconds=1)
        state = _finished(em, failing)
        if state is not None:
            break
    assert state == "Failed"
    (session,) = [s for s in em.sessions() if s.id == failing]
    assert session.message.startswith("Failed to") and session.result == "Failed"
    # Every other live session ended before it, and it ended no later than now.
    assert session.ended is not None and session.ended <= clock()


def test_fail_every_makes_a_failure_every_few_real_minutes(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=0, speed=20, fail_every=90), clock=clock)
    for _ in range(12 * 60 // 5):  # twelve real minutes, polled every 5 s as the demo does
        clock.advance(seconds=5)
        em.sessions()
    failed = sorted(s.ended for s in em.sessions() if s.state == "Failed" and s.ended)
    assert len(failed) >= 5
    gaps = [b - a for a, b in zip([T0, *failed], failed, strict=False)]
    assert max(gaps) <= timedelta(minutes=3)


def test_fail_by_control_api(em: SimulatedEM, clock: ManualClock) -> None:
    response = requests.post(em.url + "/_sim/fail", timeout=10)
    assert response.status_code == 200
    failing = response.json()["failing"]
    for _ in range(60):
        clock.advance(minutes=1)
        if _finished(em, failing) is not None:
            break
    assert _finished(em, failing) == "Failed"


def test_fail_while_frozen_shows_no_failure_until_the_clock_runs(clock: ManualClock) -> None:
    # A frozen clock still has the rest of the day's schedule to mark, but nothing finishes.
    with SimulatedEM(SimulatorSettings(history_days=0, live=False), clock=clock) as em:
        response = requests.post(em.url + "/_sim/fail", timeout=10)
        assert response.status_code == 200
        assert all(s.state != "Failed" for s in em.sessions())


def test_fail_every_is_a_runtime_setting_and_refuses_negatives(clock: ManualClock) -> None:
    em = SimulatedEM(SimulatorSettings(history_days=0), clock=clock)
    em.set(fail_every=60)
    assert em.settings.fail_every == 60
    with pytest.raises(ValueError, match="fail_every"):
        em.set(fail_every=-1)
