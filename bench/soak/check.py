"""Did the exporter count every finished session once? Judged from the simulators' records.

The expectation is tests/e2e/reference.py's, written from the stated rules and sharing no code
with the exporter's parser, snapshot or collector: after the baseline (the first successful
poll), every session that finished is counted once, in finished_total and the histogram.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from e2e import reference
from e2e.helpers import COUNTERS, FINISHED, SESSION_GAUGES, Scrape, assert_samples_equal

from exporter.simulator import SimSession


def finished_ids(sessions: Iterable[SimSession]) -> frozenset[str]:
    return frozenset(s.id for s in sessions if not reference.is_running(s))


def counted_since(baseline: Sequence[SimSession], final: Sequence[SimSession]) -> list[SimSession]:
    """The sessions the exporter must have counted: finished now, not finished at baseline."""
    before = finished_ids(baseline)
    return [s for s in final if not reference.is_running(s) and s.id not in before]


def problems(
    server: str, scrape: Scrape, baseline: Sequence[SimSession], final: Sequence[SimSession]
) -> list[str]:
    """Every way the counters or the final gauges differ from the records; [] when right."""
    found: list[str] = []
    types = {s.session_type for s in baseline} | {s.session_type for s in final}
    expected = reference.counters(server, types, counted_since(baseline, final))
    actual = scrape.select(COUNTERS, server=server)
    for k in sorted(set(expected) | set(actual)):
        if k[0] != FINISHED:
            continue
        want, got = expected.get(k, 0.0), actual.get(k, 0.0)
        labels = dict(k[1])
        where = f"{server} {labels['session_type']} {labels['result']}"
        if got > want:
            found.append(f"{where}: counted {got:g}, finished {want:g} (+{got - want:g} twice)")
        elif got < want:
            found.append(f"{where}: counted {got:g}, finished {want:g} ({want - got:g} lost)")
    for label, want_samples, got_samples in (
        ("counters", expected, actual),
        (
            "gauges",
            reference.session_gauges(server, final),
            scrape.select(SESSION_GAUGES, server=server),
        ),
    ):
        try:
            assert_samples_equal(got_samples, want_samples)
        except AssertionError as exc:
            found.append(f"{server} {label} differ from the records: {_first_lines(str(exc))}")
    return found


def _first_lines(text: str, limit: int = 12) -> str:
    lines = text.splitlines()
    more = f"\n... {len(lines) - limit} more lines" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more
