"""An EM with 10,000 session types against an exporter capped at 20 of them.

The simulator's extra_session_types adds one finished session per extra type; the exporter
must keep at most max_session_types label values in every family, count what it dropped,
say so once per poll, and keep serving a small exposition.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import replace

import pytest

from exporter.config import Format

from .conftest import MakeExporter, MakeSim
from .helpers import COUNTERS, FINISHED, SESSION_GAUGES, Scrape, server_config

EXTRA = 10_000
CAP = 20
DROPPED = "session types over max_session_types dropped"
# 20 types of a two-day history expose about 70 KB; the 10,000 types uncapped would take
# megabytes, so this bound fails long before the cap is ineffective.
MAX_EXPOSITION_BYTES = 100_000


def _types(scrape: Scrape, names: str | Collection[str]) -> set[str]:
    return {
        dict(k[1])["session_type"] for k in scrape.select(names) if "session_type" in dict(k[1])
    }


def _assert_capped(scrape: Scrape) -> set[str]:
    """Every family holds at most CAP types; the types of all of them together."""
    every: set[str] = set()
    for family in (*SESSION_GAUGES, *COUNTERS):
        found = _types(scrape, family)
        assert len(found) <= CAP, (family, len(found))
        every |= found
    assert len(every) <= CAP, len(every)
    assert len(scrape.text.encode("utf-8")) < MAX_EXPOSITION_BYTES
    return every


def _dropped_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    lines = [
        r.__dict__["fields"]
        for r in caplog.records
        if r.name == "exporter.poller" and r.getMessage() == DROPPED
    ]
    caplog.clear()
    return lines


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_ten_thousand_session_types_are_capped_in_every_family(
    make_sim: MakeSim, make_exporter: MakeExporter, caplog: pytest.LogCaptureFixture, fmt: Format
) -> None:
    sim = make_sim(extra_session_types=EXTRA)
    answer = sim.sessions()
    answer_types = sorted({s.session_type for s in answer})
    assert len(answer_types) > EXTRA  # the real types are there too
    # No type has counters yet, so the first CAP types in sorted order are kept.
    kept = set(answer_types[:CAP])
    assert any(t.startswith("SimExtraType") for t in kept)
    assert any(not t.startswith("SimExtraType") for t in kept)
    dropped_entries = sum(1 for s in answer if s.session_type not in kept)
    exporter = make_exporter([replace(server_config(sim, fmt=fmt), max_session_types=CAP)])

    with caplog.at_level(logging.WARNING, logger="exporter.poller"):
        assert exporter.poll()
        first = exporter.scrape()
        assert _dropped_lines(caplog) == [
            {
                "server": "em01",
                "types": len(answer_types) - CAP,
                "entries": dropped_entries,
                "max_session_types": CAP,
            }
        ]
        assert _assert_capped(first) == kept
        assert _types(first, "veeam_em_system_sessions") == kept
        assert first.value("veeam_em_skipped_sessions_total", server="em01") == dropped_entries
        assert first.value("veeam_em_up", server="em01") == 1.0
        counted_extras = {
            k: v for k, v in first.select(FINISHED).items() if "SimExtraType" in str(k)
        }
        assert counted_extras

        sim.set(extra_session_types=0)
        assert sim.settings.extra_session_types == 0
        real_types = {s.session_type for s in sim.sessions()}
        assert not any(t.startswith("SimExtraType") for t in real_types)
        assert exporter.poll()
        second = exporter.scrape()
        lines = _dropped_lines(caplog)

    assert len(lines) <= 1  # never more than one line per poll
    assert len(_assert_capped(second)) <= CAP
    assert second.value("veeam_em_up", server="em01") == 1.0
    assert second.errors("em01") == first.errors("em01")
    # The gauges describe the answer, which has no extra type any more; the counters of the
    # extra types stay, unchanged, and keep their place under the cap.
    assert _types(second, "veeam_em_system_sessions") <= real_types
    assert {k: second.samples[k] for k in counted_extras} == counted_extras
    # Types holding counters are always kept; the room left goes to the others in order.
    counted = _types(first, COUNTERS)
    room = CAP - len(counted)
    admitted = (real_types & counted) | set(sorted(real_types - counted)[:room])
    assert _types(second, "veeam_em_system_sessions") == admitted
    newcomers = real_types - admitted
    newcomer_entries = sum(1 for s in sim.sessions() if s.session_type in newcomers)
    if newcomers:
        assert lines == [
            {
                "server": "em01",
                "types": len(newcomers),
                "entries": newcomer_entries,
                "max_session_types": CAP,
            }
        ]
    else:
        assert lines == []
    skipped = second.value("veeam_em_skipped_sessions_total", server="em01")
    assert skipped == dropped_entries + newcomer_entries
