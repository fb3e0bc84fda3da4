"""Fixtures of the end-to-end tests: simulators and exporters on real loopback sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import pytest

from exporter.config import ServerConfig
from exporter.simulator import SimulatedEM, SimulatorSettings

from .helpers import ExporterOnSocket

MakeSim = Callable[..., SimulatedEM]
MakeExporter = Callable[[Sequence[ServerConfig]], ExporterOnSocket]


@pytest.fixture
def now() -> datetime:
    """The simulators' frozen clock: the real time when the test began.

    Close to the exporter's own clock, so the exporter's 30-day bookkeeping applies as it
    would against a real EM; frozen, so the records cannot move between poll and check.
    """
    return datetime.now(UTC)


@pytest.fixture
def make_sim(now: datetime) -> Iterator[MakeSim]:
    """Start simulators that stand still (live=False, frozen clock); stopped at teardown."""
    started: list[SimulatedEM] = []

    def make(**settings: object) -> SimulatedEM:
        options: dict[str, object] = {"live": False, "history_days": 2.0, **settings}
        sim = SimulatedEM(SimulatorSettings(**options), clock=lambda: now)  # type: ignore[arg-type]
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def make_exporter(make_sim: MakeSim) -> Iterator[MakeExporter]:
    """In-process exporters serving HTTP on a free port; stopped (and logged out) before the
    simulators they talk to."""
    made: list[ExporterOnSocket] = []

    def make(servers: Sequence[ServerConfig]) -> ExporterOnSocket:
        exporter = ExporterOnSocket(servers)
        made.append(exporter)
        return exporter

    yield make
    for exporter in made:
        exporter.close()
