"""A reliability soak of the real exporter process (``make soak``), not part of ``make test``.

The exporter runs as its own process (see ``launcher``) and polls several simulated EMs that
run in this process, live and accelerated, while faults of every kind are injected; its
memory, file descriptors and threads are sampled throughout, concurrent scrapers load it,
and at the end its counters are checked against the simulators' records. docs/reliability.md
describes the phases, the bounds and the measured results.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The expected counters come from tests/e2e/reference.py, which imports its siblings the way
# pytest does: with tests/ on the path. Appended, so nothing there can shadow a real module.
_TESTS = str(ROOT / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
