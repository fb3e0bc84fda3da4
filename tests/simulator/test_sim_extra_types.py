"""extra_session_types: many distinct session types, one finished session each."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests

from exporter.simulator import SimulatedEM, SimulatorSettings
from exporter.simulator.cli import build_parser, settings_from
from exporter.simulator.extras import ExtraTypes
from exporter.simulator.settings import validate

from .helpers import T0, ManualClock, get, logon, parse_xml, text

LIST = "/api/systemSessions?format=Entity"


def _extras(em: SimulatedEM) -> dict[str, tuple[str, datetime, datetime | None, str]]:
    """The extra types' sessions as em.sessions() shows them: type -> (id, created, ended,
    state)."""
    out = {}
    for s in em.sessions():
        if s.session_type.startswith("SimExtraType"):
            assert s.session_type not in out, "one session per extra type"
            out[s.session_type] = (s.id, s.created, s.ended, s.state)
    return out


@pytest.mark.parametrize("bad", [-1, 100_001, True, 2.0, "5"])
def test_extra_session_types_is_validated(bad: object) -> None:
    with pytest.raises(ValueError, match="extra_session_types must be an integer from 0 to"):
        validate(SimulatorSettings(extra_session_types=bad))  # type: ignore[arg-type]
    validate(SimulatorSettings(extra_session_types=100_000))


def test_extra_types_are_in_the_xml_and_json_answers(clock: ManualClock) -> None:
    with SimulatedEM(SimulatorSettings(history_days=1, extra_session_types=12), clock=clock) as em:
        extras = _extras(em)
        assert sorted(extras) == [f"SimExtraType{n:06d}" for n in range(1, 13)]
        for _id, created, ended, _state in extras.values():
            assert ended is not None
            assert T0 - timedelta(days=1) < created < ended < T0
        assert extras["SimExtraType000010"][3] == "Failed"
        assert {e[3] for n, e in extras.items() if n != "SimExtraType000010"} == {
            "CompletedSuccessfully"
        }
        token = logon(em)
        root = parse_xml(get(em, LIST, token).content)
        xml_types = [text(item, "SessionType") for item in root]
        assert sorted(t for t in xml_types if t and t.startswith("SimExtraType")) == sorted(extras)
        body = get(em, LIST, token, Accept="application/json").json()
        json_ids = {i["UID"].rsplit(":", 1)[1] for i in body["Sessions"]}
        assert {e[0] for e in extras.values()} <= json_ids
        assert len(body["Sessions"]) == len(em.sessions())
        # An extra session can be read on its own, like any other; not finished twice.
        some_id = extras["SimExtraType000003"][0]
        one = get(em, f"/api/systemSessions/{some_id}?format=Entity", token)
        assert one.status_code == 200
        assert text(parse_xml(one.content), "SessionType") == "SimExtraType000003"
        assert get(em, f"/api/systemSessions/{some_id}/events", token).status_code == 200
        with pytest.raises(KeyError):
            em.finish_session(some_id)


def test_extra_types_keep_their_sessions_when_asked_again_or_raised(clock: ManualClock) -> None:
    with SimulatedEM(SimulatorSettings(history_days=1, extra_session_types=5), clock=clock) as em:
        first = _extras(em)
        clock.advance(minutes=10)
        assert _extras(em) == first
        em.set(extra_session_types=8)
        raised = _extras(em)
        assert len(raised) == 8
        assert {k: raised[k] for k in first} == first
        em.set(extra_session_types=2)
        assert _extras(em) == {k: first[k] for k in sorted(first)[:2]}
        em.set(extra_session_types=0)
        assert _extras(em) == {}


def test_extra_types_by_control_api_and_flag(em: SimulatedEM) -> None:
    url = em.url + "/_sim/settings"
    changed = requests.post(url, json={"extra_session_types": 3}, timeout=10)
    assert changed.status_code == 200
    assert changed.json()["extra_session_types"] == 3
    assert len(_extras(em)) == 3
    refused = requests.post(url, json={"extra_session_types": -1}, timeout=10)
    assert refused.status_code == 400
    assert len(_extras(em)) == 3
    args = build_parser().parse_args(["--extra-session-types", "7"])
    assert settings_from(args).extra_session_types == 7
    assert settings_from(build_parser().parse_args([])).extra_session_types == 0


def test_extra_views_are_built_once_per_count_and_representation() -> None:
    extras = ExtraTypes(seed=1)
    extras.set_count(10_000, T0)
    horizon = T0 - timedelta(days=30)
    built = extras.views(horizon, vocabulary="state", digits=6)
    assert len(built) == 10_000
    assert extras.views(horizon, vocabulary="state", digits=6) is built
    short = extras.views(horizon, vocabulary="short", digits=6)
    assert short is not built
    assert {s.result for s in short} == {"Success", "Failed"}
    # Out of the 30-day window, the extra sessions leave the answer like any other.
    assert extras.views(T0, vocabulary="state", digits=6) == []
    same_seed = ExtraTypes(seed=1)
    same_seed.set_count(3, T0 + timedelta(days=1))
    assert [s.id for s in same_seed.views(horizon, vocabulary="state", digits=6)] == sorted(
        s.id for s in built if s.session_type <= "SimExtraType000003"
    )
