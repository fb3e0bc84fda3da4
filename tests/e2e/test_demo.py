"""`--demo`: the real process with its built-in simulated EM, as a first-time user runs it."""

from __future__ import annotations

import re
import time

import pytest
import requests
from fakes import wait_for

from .helpers import ExporterProcess, SampleKey, Scrape, scrape

pytestmark = pytest.mark.integration


def test_demo_serves_up_and_sessions_within_seconds_and_stops_on_sigterm() -> None:
    process = ExporterProcess(["--demo", "--web.listen-address", "127.0.0.1:0"])
    try:
        base = process.listening_base()
        # The first log lines say where to look; the URL given there answers.
        told = process.wait_for_line(r"metrics=(http://\S+)")
        assert process.lines.index(told.string) < 3, process.lines
        port = base.rsplit(":", 1)[1]
        metrics_url = told.group(1)
        assert re.fullmatch(rf"http://(localhost|127\.0\.0\.1):{port}/metrics", metrics_url)

        results: list[Scrape] = []

        def serving() -> bool:
            result = scrape(base)
            results.append(result)
            return result.value("veeam_em_up", server="demo-em") == 1.0 and any(
                v > 0 for v in result.select("veeam_em_system_sessions", server="demo-em").values()
            )

        assert wait_for(serving, timeout=20), process.lines
        result = results[-1]
        assert 'veeam_em_up{server="demo-em"} 1.0' in result.text
        assert result.value("veeam_em_logins_total", server="demo-em") == 1.0
        # A month of history: every kind of session, failures included.
        types = {
            dict(labels)["session_type"]
            for (_, labels) in result.select("veeam_em_system_sessions", server="demo-em")
        }
        assert {"CollectJob", "DatabaseMaintenance", "CatalogReplicationJob"} <= types
        assert result.select("veeam_em_system_session_last_failure_info", server="demo-em")
        assert requests.get(metrics_url, timeout=5).status_code == 200

        code = process.terminate()
    finally:
        process.kill()
    assert code == 0
    assert "msg=stopped" in process.lines[-1]
    # The demo credential is a registered secret: never printed.
    assert "demo-em-Pa55word" not in "\n".join(process.lines)


def test_demo_dates_nothing_in_the_future_and_says_how_to_fail_a_session() -> None:
    process = ExporterProcess(["--demo", "--web.listen-address", "127.0.0.1:0"])
    try:
        base = process.listening_base()
        started = time.time()
        page = process.wait_for_line(r"\bpage=(http://\S+)").group(1)
        assert page == base + "/"
        landing = requests.get(page, timeout=5)
        assert landing.status_code == 200 and "demo-em" in landing.text
        # The banner's command, run as given: the simulator's URL and its loopback-only route.
        command = process.wait_for_line(r'\bcommand="curl -X POST (http://\S+/_sim/fail)"')
        fail_url = command.group(1)

        future: list[tuple[SampleKey, float]] = []
        live = False

        def live_activity_seen() -> bool:
            nonlocal live
            result = scrape(base)
            now = time.time()
            for sample, value in result.samples.items():
                if sample[0].endswith("_timestamp_seconds") and value > now + 1.0:
                    future.append((sample, value))
            starts = result.select(
                "veeam_em_system_session_last_start_timestamp_seconds", server="demo-em"
            )
            live = any(v > started for v in starts.values())
            return live or bool(future)

        # At 20x the next CollectJob slot of each server is at most 45 s of real time away.
        assert wait_for(live_activity_seen, timeout=90), process.lines
        assert not future, f"timestamps ahead of real time: {future}"
        assert live

        response = requests.post(fail_url, timeout=5)
        assert response.status_code == 200 and response.json()["failing"]
        code = process.terminate()
    finally:
        process.kill()
    assert code == 0
