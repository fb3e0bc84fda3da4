from __future__ import annotations

from collections.abc import Iterator

import pytest

from exporter.simulator import SimulatedEM, SimulatorSettings

from .helpers import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def em(clock: ManualClock) -> Iterator[SimulatedEM]:
    """A started simulator with a short history on a controllable clock."""
    with SimulatedEM(SimulatorSettings(history_days=2), clock=clock) as simulator:
        yield simulator


@pytest.fixture
def full_em(clock: ManualClock) -> Iterator[SimulatedEM]:
    """A started simulator with the default month of history."""
    with SimulatedEM(SimulatorSettings(), clock=clock) as simulator:
        yield simulator
