"""What scrapes cost the EM: nothing. The real exporter process polls a simulated EM while
several scrapers hit /metrics every second; the simulator counts the logons and GETs it got.

Run from bench.run; the exporter is bench.soak's launcher (the exporter's own command line,
with a poll interval below a configuration file's 10 s minimum).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.soak.probe import ExporterUnderTest
from exporter.simulator import SimulatedEM, SimulatorSettings

SESSIONS_ROUTE = "GET /api/systemSessions"


@dataclass(frozen=True)
class LoadResult:
    seconds: float
    scrapers: int
    scrapes: int
    scrape_errors: int
    polls: int
    gets: int
    logons: int
    logouts: int

    @property
    def one_logon(self) -> bool:
        return self.logons == 1

    @property
    def one_get_per_poll(self) -> bool:
        return self.polls > 0 and self.gets == self.polls


def _polls(base: str) -> int:
    text = requests.get(base + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "veeam_em_polls":
            return int(sum(s.value for s in family.samples if s.name.endswith("_total")))
    return 0


def run(
    workdir: Path,
    *,
    seconds: float,
    scrapers: int = 3,
    every: float = 1.0,
    poll_interval: float = 5.0,
) -> LoadResult:
    sim = SimulatedEM(SimulatorSettings(password="bench-Pa55word"))  # noqa: S106
    sim.start()
    config = workdir / "emload.yml"
    # JSON is YAML.
    config.write_text(
        json.dumps(
            {
                "servers": [
                    {
                        "name": "em01",
                        "url": sim.url,
                        "username": sim.settings.username,
                        "password": sim.settings.password,
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    exporter = ExporterUnderTest(config, poll_interval)
    try:
        base = exporter.base_url()
        counts = {"ok": 0, "errors": 0}
        lock = threading.Lock()
        stop = threading.Event()

        def scrape() -> None:
            session = requests.Session()
            while not stop.is_set():
                began = time.monotonic()
                try:
                    ok = session.get(base + "/metrics", timeout=10).status_code == 200
                except requests.RequestException:
                    ok = False
                with lock:
                    counts["ok" if ok else "errors"] += 1
                stop.wait(max(0.0, every - (time.monotonic() - began)))

        threads = [threading.Thread(target=scrape, daemon=True) for _ in range(scrapers)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join(15.0)
        elapsed = time.monotonic() - started
        # A poll counts itself before its GET: wait (bounded) until both agree, so the
        # comparison never falls between the two.
        deadline = time.monotonic() + 10.0
        polls = _polls(base)
        gets = sim.stats.requests_by_route.get(SESSIONS_ROUTE, 0)
        while polls != gets and time.monotonic() < deadline:
            time.sleep(0.1)  # polling a condition with a deadline
            polls = _polls(base)
            gets = sim.stats.requests_by_route.get(SESSIONS_ROUTE, 0)
        logons = sim.stats.logons
    finally:
        exporter.stop()
        sim.stop()
    return LoadResult(
        seconds=elapsed,
        scrapers=scrapers,
        scrapes=counts["ok"],
        scrape_errors=counts["errors"],
        polls=polls,
        gets=gets,
        logons=logons,
        logouts=sim.stats.logouts,
    )
