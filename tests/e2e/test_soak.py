"""The soak's own machinery (``make soak``): its verdict on counts, and a short run of it all.

The soak itself takes minutes and is not part of the suite; these keep it from rotting.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from .conftest import MakeExporter, MakeSim
from .helpers import FINISHED, Scrape, key, server_config

ROOT = Path(__file__).resolve().parents[2]
# bench/ is not installed: it is imported from the checkout, as `python -m bench.soak` does.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from bench.soak import check  # noqa: E402

pytestmark = pytest.mark.integration


def test_the_verdict_is_empty_for_exact_counts_and_names_a_double_count_and_a_loss(
    make_sim: MakeSim, make_exporter: MakeExporter, now: datetime
) -> None:
    sim = make_sim(history_days=1.0)
    running = sim.add_session("CollectJob", created=now - timedelta(seconds=30))
    exporter = make_exporter([server_config(sim)])
    assert exporter.poll()
    baseline = sim.sessions()
    sim.finish_session(running.id, state="Failed", ended=now)
    sim.add_session(
        "CollectJob",
        state="CompletedSuccessfully",
        created=now - timedelta(seconds=20),
        ended=now - timedelta(seconds=10),
    )
    assert exporter.poll()
    result, final = exporter.scrape(), sim.sessions()

    assert len(check.counted_since(baseline, final)) == 2
    assert check.problems("em01", result, baseline, final) == []

    twice = key(FINISHED, server="em01", session_type="CollectJob", result="Success")
    lost = key(FINISHED, server="em01", session_type="CollectJob", result="Failed")
    assert result.samples[twice] == result.samples[lost] == 1.0
    tampered = Scrape(result.text, {**result.samples, twice: 2.0, lost: 0.0})
    found = check.problems("em01", tampered, baseline, final)
    assert "em01 CollectJob Success: counted 2, finished 1 (+1 twice)" in found
    assert "em01 CollectJob Failed: counted 0, finished 1 (1 lost)" in found


def test_a_short_soak_of_the_real_process_passes_and_prints_every_phase() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.soak",
            *("--duration", "45", "--servers", "2", "--scrapers", "4"),
            *("--min-polls", "40", "--fault-pause", "0.1"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("PASS")
    for phase in ("start", "warm-up", "faults", "load", "quiet"):
        assert re.search(rf"^{phase} +\d+ +\d+ ", done.stdout, re.MULTILINE), done.stdout
    # Both servers were polled far more often than a file's 10 s minimum allows in 45 s.
    polls = [int(n) for n in re.findall(r"^em0\d: (\d+) polls", done.stdout, re.MULTILINE)]
    assert len(polls) == 2
    assert min(polls) >= 20, done.stdout
