"""The complete /metrics exposition for a fixed input and clock, pinned in tests/golden/.

Four servers cover every kind of series: em01 (XML, baseline then new finishes, a filter),
em02 (JSON v13, then a failed poll: gauges stay until stale_after), em03 (never polled
successfully: only poll health) and em04 (last success older than stale_after: counters only).

Two things in it are not the exporter's to choose, so the test fixes them: the build
information is pinned (a made-up revision and Python version, the real package version), and
the values of the standard `process_*` samples, which the operating system measures at each
scrape, are replaced with NaN. Their names, HELP and TYPE lines stay, so a metric added, lost
or renamed still shows in the diff; the real values are checked for plausibility separately.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_golden.py`` and
review the diff.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from fakes import Answer, ScriptedSource
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.build import BuildInfo
from exporter.config import Config, ServerConfig, SessionTypeFilter
from exporter.poller import SessionSource
from exporter.reasons import LogonRefused, PollError

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden" / "metrics.prom"
T_POLL1 = 1738022400.0  # 2025-01-28T00:00:00Z
T_POLL2 = T_POLL1 + 60
T_SCRAPE = T_POLL2 + 30
# Fixed values, the version included: a release changes __version__, never the golden file
# (tests/test_build.py checks that build_info reports the real version).
BUILD = BuildInfo(version="0.1.0", revision="abc1234", python_version="3.11.0")
PROCESS_SAMPLE = re.compile(r"^(process_[a-z_]+(?:\{[^}]*\})?) \S+$", re.MULTILINE)
PROCESS_METRICS = {
    "process_cpu_seconds": "counter",
    "process_virtual_memory_bytes": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
}


def _server(name: str, **kwargs: object) -> ServerConfig:
    return ServerConfig(
        name=name,
        url=f"https://{name}.example.com:9398",
        username="CORP\\svc_monitoring",
        password="s3cret-password",
        poll_interval=60.0,
        stale_after=180.0,
        **kwargs,  # type: ignore[arg-type]
    )


def exposition() -> str:
    """The exposition of the fixed input, process values as measured."""
    poll1 = (FIXTURES / "golden_poll1.xml").read_bytes()
    poll2 = (FIXTURES / "golden_poll2.xml").read_bytes()
    v13 = (FIXTURES / "sessions_v13.json").read_bytes()
    scripts: dict[str, list[Answer]] = {
        "em01": [poll1, poll2],
        "em02": [v13, PollError("timeout", "GET /api/systemSessions: read timed out")],
        "em03": [LogonRefused("logon refused: HTTP 401"), LogonRefused("logon refused")],
        "em04": [poll1],
    }
    now = [T_POLL1]
    ticks = iter(float(i) * 0.25 for i in range(1000))

    def factory(server: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
        return ScriptedSource(scripts[server.name], on_logon)

    with mock.patch("exporter.build.current", return_value=BUILD):
        exporter = Exporter(
            clock=lambda: now[0], monotonic=lambda: next(ticks), client_factory=factory
        )
    exporter.apply(
        Config(
            servers=(
                _server("em01", session_types=SessionTypeFilter(exclude=("LogExport",))),
                _server("em02", format="json"),
                _server("em03"),
                _server("em04"),
            )
        )
    )
    pollers = {p.server.name: p for p in exporter.pollers()}
    now[0] = T_POLL1 - 1000  # em04's only success is long past
    pollers["em04"].poll_once()
    now[0] = T_POLL1
    for name in ("em01", "em02", "em03"):
        pollers[name].poll_once()
    now[0] = T_POLL2
    for name in ("em01", "em02", "em03"):
        pollers[name].poll_once()
    now[0] = T_SCRAPE
    return generate_latest(exporter.registry).decode()


def mask_process_values(text: str) -> str:
    return PROCESS_SAMPLE.sub(r"\1 NaN", text)


def render() -> str:
    return mask_process_values(exposition())


def test_exposition_matches_golden_file() -> None:
    text = render()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_golden_file_shows_the_rules_it_pins() -> None:
    # Guards against regenerating the golden file from broken code without noticing.
    text = GOLDEN.read_text()
    assert 'veeam_em_up{server="em01"} 1.0' in text
    assert 'veeam_em_up{server="em02"} 0.0' in text
    assert 'veeam_em_poll_errors_total{reason="timeout",server="em02"} 1.0' in text
    assert 'veeam_em_poll_errors_total{reason="auth",server="em03"} 2.0' in text
    # em01: c4 (running at baseline) failed and x1 finished after the baseline.
    assert (
        'veeam_em_system_sessions_finished_total{result="Failed",server="em01",'
        'session_type="CollectJob"} 1.0'
    ) in text
    assert (
        'veeam_em_system_sessions_finished_total{result="Unknown",server="em01",'
        'session_type="FutureJob"} 1.0'
    ) in text
    assert 'session_type="LogExport"' not in text.split("veeam_em_skipped")[0]
    assert 'veeam_em_skipped_sessions_total{server="em01"} 2.0' in text
    assert (
        'veeam_em_system_session_last_failure_info{message="Failed to collect data from backup '
        'server vbr01.corp.local: Access is denied.",server="em01",session_type="CollectJob"} 1.0'
    ) in text
    # em02 failed its second poll but is within stale_after: gauges stay.
    assert 'veeam_em_system_sessions{server="em02",session_type="CollectJob"' in text
    # em04 is stale: counters only.
    assert 'veeam_em_system_sessions{server="em04"' not in text
    assert 'veeam_em_system_sessions_finished_total{result="Success",server="em04"' in text
    # em03 never succeeded: no last-success gauge.
    assert 'veeam_em_last_successful_poll_timestamp_seconds{server="em03"}' not in text
    # Build information: every label, pinned.
    assert (
        f'veeam_em_exporter_build_info{{pythonversion="3.11.0",revision="abc1234",'
        f'version="{BUILD.version}"}} 1.0'
    ) in text


def test_golden_file_has_the_process_metrics_masked() -> None:
    families = {f.name: f for f in text_string_to_metric_families(GOLDEN.read_text())}
    process = {name: f.type for name, f in families.items() if name.startswith("process_")}
    assert process == PROCESS_METRICS
    for name in process:
        (sample,) = families[name].samples
        assert math.isnan(sample.value), f"{name} is not masked"


def test_the_masked_process_values_are_real_measurements() -> None:
    # The mask hides the values from the comparison; this checks that they are measured.
    text = exposition()
    values = {
        s.name: s.value
        for f in text_string_to_metric_families(text)
        if f.name.startswith("process_")
        for s in f.samples
    }
    assert set(values) == {
        "process_cpu_seconds_total",
        "process_virtual_memory_bytes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "process_max_fds",
    }
    assert values["process_resident_memory_bytes"] > 1_000_000
    assert values["process_virtual_memory_bytes"] >= values["process_resident_memory_bytes"]
    assert 0 < values["process_start_time_seconds"] <= time.time()
    assert 0 < values["process_open_fds"] <= values["process_max_fds"]
    assert values["process_cpu_seconds_total"] > 0
