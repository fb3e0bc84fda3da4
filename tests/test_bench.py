"""`make bench` itself: its adapter to the data path, its answers, and a whole run on a tiny
answer, so that it cannot rot. Only the structure of its output is checked, never a timing
(the figures are for docs/performance.md, measured on purpose)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# bench/ is not installed: it is imported from the checkout, as `python -m bench` does.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from bench import answers, ours  # noqa: E402

TAKEN_AT = answers.TAKEN_AT.timestamp()


@pytest.mark.parametrize("kind", answers.KINDS)
def test_the_adapter_polls_every_kind_of_answer_and_a_steady_poll_counts_nothing(
    kind: answers.Kind,
) -> None:
    body = answers.answer(kind, 120)
    fmt: ours.Format = "xml" if kind == "xml" else "json"
    ledger = ours.new_ledger()
    first = ours.poll(io.BytesIO(body), fmt, ledger, taken_at=TAKEN_AT)
    assert ours.sessions_in(first) == 120
    assert first.skipped == 0
    # Every session is in the window and all but the running ones finished: all remembered.
    assert len(ledger) == 120 - answers.RUNNING
    steady = ours.poll(io.BytesIO(body), fmt, ledger, taken_at=TAKEN_AT)
    assert ours.sessions_in(steady) == 120
    assert steady.newly_finished == ()
    assert ours.parse_only(io.BytesIO(body), fmt) == 120


def test_the_answers_are_the_same_every_time_and_json_casings_differ_only_in_keys() -> None:
    assert answers.answer("xml", 30) == answers.answer("xml", 30)
    v12, v13 = answers.answer("json-v12", 30), answers.answer("json-v13", 30)
    assert b'"SessionType"' in v12 and b'"sessionType"' in v13
    assert json.loads(v12)["Sessions"][3]["UID"] == json.loads(v13)["sessions"][3]["uid"]


_SECTIONS = (
    "XML, 200 sessions",
    "JSON, v12 keys (PascalCase), 200 sessions",
    "JSON, v13 keys (camelCase), 200 sessions",
    "A steady poll against the first, in instructions (callgrind), 200 sessions",
    "Whole poll over loopback HTTP with gzip (the real client path), 200 sessions",
    "What the client adds: the 200-session answer",
    "/metrics render through the real HTTP app",
    "Backup job sessions, XML: a poll of 10 jobs, ",
    "Backup job sessions, JSON (v13, camelCase): a poll of 10 jobs, ",
    "beside: system sessions, XML, 200, baseline poll in memory",
    "EM load: the exporter process polling the simulator, 3 scrapers every 1 s",
    "Targets, at 200 sessions unless said",
)
_ROWS = (
    "bare lxml iterparse + clear() (floor)",
    "json.loads of the whole body (floor)",
    "our parse only",
    "our parse + snapshot/ledger build, baseline poll",
    "our parse + snapshot/ledger build, steady poll",
    "ElementTree DOM + the same aggregation",
    "xmltodict + the same aggregation",
    "plain streaming GET + gunzip + bare iterparse",
    "our EM client + parse + build, baseline poll",
    "our EM client + parse + build, steady poll",
    "OpenMetrics + gzip (what Prometheus asks for)",
    "before: prometheus-client's app, OpenMetrics + gzip",
    "formatting the session families",
    "in memory (the answers replayed): bootstrap poll",
    "in memory: steady poll (the same answers again)",
    "over loopback HTTP from the simulator: bootstrap poll",
    "over loopback HTTP: steady poll",
)


@pytest.mark.integration
def test_a_quick_run_on_a_tiny_answer_prints_every_table_and_a_verdict_on_every_target(
    tmp_path: Path,
) -> None:
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            *("--sizes", "200", "--repeat", "1", "--render-rounds", "20"),
            *("--emload-seconds", "3", "--jobs", "10", "--no-instructions"),
            *("--json", str(figures)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for section in _SECTIONS:
        assert section in out, section
    for row in _ROWS:
        assert row in out, row
    verdicts = re.findall(r"^  (PASS|FAIL|----)  (.+?)\s{2,}\S.*$", out, re.MULTILINE)
    recorded = json.loads(figures.read_text())
    assert len(verdicts) == len(recorded["verdicts"]) == 18
    # The job-session polls counted every finished session the simulator showed.
    for kind in ("xml", "json"):
        jobs = recorded["jobs"][kind]
        assert jobs["jobs"] == 10 and jobs["sessions"] > 100, jobs
        assert set(jobs["rows"]) == {
            "replay-baseline",
            "replay-steady",
            "http-baseline",
            "http-steady",
        }
    assert {target for _, target in verdicts} >= {
        "EM load: one logon per token lifetime",
        "EM load: exactly one GET per poll",
        "client path: steady poll <= 1.6x a plain GET + gunzip + iterparse",
    }
    # Counting, not timing: scrapes never reach the EM.
    em_load = {target: word for word, target in verdicts if target.startswith("EM load")}
    assert set(em_load.values()) == {"PASS"}, out
    assert "ERROR" not in out


@pytest.mark.integration
def test_callgrind_counts_a_first_poll_and_a_steady_one_apart(tmp_path: Path) -> None:
    from bench import instructions

    if not instructions.available():
        pytest.skip("valgrind is not installed")
    path = answers.path_for(tmp_path, "json-v12", 150)
    path.write_bytes(answers.answer("json-v12", 150))
    first, steady = instructions.measure(path, ROOT, timeout=600)
    # Both polls read and build 150 sessions; the steady one remembers them all already, so it
    # keeps no new record: the same order of work, and less of it.
    assert 0 < steady < first < 10 * steady
