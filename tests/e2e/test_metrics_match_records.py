"""The exporter's answer equals what the simulator's own records say, in every representation.

Real sockets both ways: the exporter polls the simulator over HTTP and is scraped over HTTP.
The expectation is computed in `reference.py` from `sim.sessions()` by the stated rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from exporter.config import Format
from exporter.simulator import SimSession, SimulatedEM

from . import reference
from .conftest import MakeExporter, MakeSim
from .helpers import COUNTERS, SESSION_GAUGES, Scrape, assert_samples_equal, server_config

pytestmark = pytest.mark.integration

LONG_MESSAGE = (
    "  Failed to collect data from backup server vbr01.corp.local:\n\t the RPC server is"
    '   unavailable  (0x800706BA). "CORP\\svc_backup" said: é→✓ 🚀 '
    + " ".join(f"detail{i:03d}" for i in range(40))
    + "  \n"
)


def add_edge_cases(sim: SimulatedEM, now: datetime) -> None:
    """Sessions the month of history does not have, each aimed at one rule: how running and
    result are read, which session is the newest, how a failure message is cleaned."""

    def ago(**delta: float) -> datetime:
        return now - timedelta(**delta)

    # The newest failure of CollectJob, with a message to collapse, escape and cut.
    sim.add_session(
        "CollectJob",
        state="Failed",
        created=ago(seconds=50),
        ended=ago(seconds=40),
        message=LONG_MESSAGE,
    )
    # A type from a later release, with an unknown state: Unknown result, own state series.
    sim.add_session("FutureJob", state="Postponed", created=ago(hours=2), ended=ago(hours=1))
    sim.add_session(
        "FutureJob", state="CompletedSuccessfully", created=ago(hours=3), ended=ago(hours=2)
    )
    # Ties on creation time: the later end wins; on creation and end, the greater UID.
    tie = ago(minutes=30)
    sim.add_session(
        "TieJob", state="CompletedWarning", created=tie, ended=tie + timedelta(seconds=90)
    )
    sim.add_session("TieJob", state="Failed", created=tie, ended=tie + timedelta(seconds=30))
    sim.add_session(
        "TieJob", state="CompletedSuccessfully", created=ago(hours=5), ended=ago(hours=4)
    )
    same = ago(minutes=10)
    for state in ("CompletedSuccessfully", "Failed", "CompletedWarning"):
        sim.add_session("TieEndJob", state=state, created=same, ended=same + timedelta(seconds=5))
    # A finished session without EndTimeUTC: finished, but no last_end/last_duration.
    sim.add_session("NoEndJob", state="Failed", created=ago(minutes=5), message="no end time")
    # Result/Result says nothing on a finished session: State decides.
    sim.add_session(
        "SilentResultJob",
        state="Failed",
        result="None",
        created=ago(minutes=8),
        ended=ago(minutes=7),
    )
    # Canceled, and two running sessions of one type: the older one is the oldest running.
    sim.add_session(
        "CatalogCrawlJob",
        state="Failed",
        created=ago(minutes=20),
        ended=ago(minutes=19),
        canceled=True,
        message="Job has been stopped by user CORP\\veeam.admin.",
    )
    sim.add_session("CatalogCrawlJob", created=ago(minutes=3))
    sim.add_session("CatalogCrawlJob", created=ago(minutes=45))
    # A type whose only session runs: no last_end, last_result, success or failure series.
    sim.add_session("OnlyRunningJob", created=ago(seconds=5))


VARIANTS = [
    pytest.param("xml", {"result_vocabulary": "state"}, id="xml-state"),
    pytest.param("xml", {"result_vocabulary": "short", "fraction_digits": 0}, id="xml-short"),
    pytest.param("json", {"json_casing": "pascal", "fraction_digits": 3}, id="json-v12-state"),
    pytest.param(
        "json", {"json_casing": "pascal", "result_vocabulary": "short"}, id="json-v12-short"
    ),
    pytest.param(
        "json", {"json_casing": "camel", "bom": True, "fraction_digits": 7}, id="json-v13-bom-state"
    ),
    pytest.param(
        "json",
        {"json_casing": "camel", "bom": True, "result_vocabulary": "short"},
        id="json-v13-bom-short",
    ),
]


@pytest.mark.parametrize(("fmt", "settings"), VARIANTS)
def test_metrics_equal_the_simulators_records(
    make_sim: MakeSim,
    make_exporter: MakeExporter,
    now: datetime,
    fmt: Format,
    settings: dict[str, object],
) -> None:
    sim = make_sim(history_days=10.0, **settings)
    add_edge_cases(sim, now)
    exporter = make_exporter([server_config(sim, fmt=fmt)])

    assert exporter.poll()
    result = exporter.scrape()
    records = sim.sessions()  # frozen: exactly what the poll received

    assert result.value("veeam_em_up", server="em01") == 1.0
    assert result.value("veeam_em_skipped_sessions_total", server="em01") == 0.0
    assert_samples_equal(
        result.select(SESSION_GAUGES, server="em01"), reference.session_gauges("em01", records)
    )
    # The first poll is the baseline: every type seen gets its zero counters and histogram.
    types = {s.session_type for s in records}
    assert_samples_equal(
        result.select(COUNTERS, server="em01"), reference.counters("em01", types, counted=[])
    )
    # Sanity of the fixture itself: the answer has what the rules above are about.
    assert sum(v for k, v in result.select("veeam_em_system_sessions").items()) == len(records)
    assert len(records) > 2000
    assert_edge_cases_rendered(result, records)


LAST_RESULT = "veeam_em_system_session_last_result"
# (metric, labels besides server, value or None for absent), spelled out by hand.
SPELLED_OUT: list[tuple[str, dict[str, str], float | None]] = [
    (LAST_RESULT, {"session_type": "FutureJob", "result": "Unknown"}, 1.0),
    (LAST_RESULT, {"session_type": "FutureJob", "result": "Success"}, 0.0),
    ("veeam_em_system_sessions", {"session_type": "FutureJob", "state": "Postponed"}, 1.0),
    ("veeam_em_system_sessions", {"session_type": "FutureJob", "state": "Failed"}, 0.0),
    (LAST_RESULT, {"session_type": "TieJob", "result": "Warning"}, 1.0),
    (LAST_RESULT, {"session_type": "NoEndJob", "result": "Failed"}, 1.0),
    ("veeam_em_system_session_last_end_timestamp_seconds", {"session_type": "NoEndJob"}, None),
    ("veeam_em_system_session_last_duration_seconds", {"session_type": "NoEndJob"}, None),
    ("veeam_em_system_session_last_failure_timestamp_seconds", {"session_type": "NoEndJob"}, None),
    (LAST_RESULT, {"session_type": "SilentResultJob", "result": "Failed"}, 1.0),
    ("veeam_em_system_sessions_canceled", {"session_type": "OnlyRunningJob"}, 0.0),
    (LAST_RESULT, {"session_type": "OnlyRunningJob", "result": "Success"}, None),
    (
        "veeam_em_system_session_last_success_timestamp_seconds",
        {"session_type": "OnlyRunningJob"},
        None,
    ),
]


def assert_edge_cases_rendered(result: Scrape, records: list[SimSession]) -> None:
    """A few expectations spelled out, so that a wrong reference cannot pass unnoticed."""
    info = result.select("veeam_em_system_session_last_failure_info", session_type="CollectJob")
    assert len(info) == 1
    message = dict(next(iter(info))[1])["message"]
    assert message.startswith(
        "Failed to collect data from backup server vbr01.corp.local: the RPC server is unavailable"
        ' (0x800706BA). "CORP\\svc_backup" said: é→✓ 🚀 detail000 detail001'
    )
    assert len(message) == 200
    for name, labels, value in SPELLED_OUT:
        assert result.value(name, server="em01", **labels) == value, (name, labels)
    # Same creation and end: the greatest UID (same prefix, so the greatest id) is newest.
    winner = max((s for s in records if s.session_type == "TieEndJob"), key=lambda s: s.id)
    short = {"CompletedSuccessfully": "Success", "CompletedWarning": "Warning", "Failed": "Failed"}
    for word in ("Success", "Warning", "Failed"):
        value = result.value(LAST_RESULT, server="em01", session_type="TieEndJob", result=word)
        assert value == (1.0 if short[winner.state] == word else 0.0)
    canceled = result.value(
        "veeam_em_system_sessions_canceled", server="em01", session_type="CatalogCrawlJob"
    )
    assert canceled is not None and canceled >= 1
