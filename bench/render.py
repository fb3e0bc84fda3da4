"""The cost of one scrape: ``python -m bench.render ROUNDS N=FILE...`` prints one JSON object.

For each XML answer, a real exporter (exporter.app.Exporter: its registry, self-metrics,
process collector and session collector) polls it twice through its real poller, from
memory; then their real HTTP apps (exporter.web.make_app) answer the telemetry path ROUNDS
times each, taking turns, and the median of each way of asking is reported: plain text, text
with gzip, and what Prometheus asks for (``Accept: application/openmetrics-text;
version=1.0.0`` with ``Accept-Encoding: gzip``). The same registries behind prometheus-client's
own app are measured too, as the "before". The breakdown says where a scrape's time goes.
"""

from __future__ import annotations

import gzip
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from wsgiref.types import WSGIApplication

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from bench.answers import TAKEN_AT
from exporter.app import Exporter
from exporter.collector import SessionCollector
from exporter.config import Config, ServerConfig
from exporter.health import ExporterMetrics
from exporter.web import make_app

T = TypeVar("T")
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
WAYS: dict[str, dict[str, str]] = {
    "text": {},
    "text+gzip": {"HTTP_ACCEPT_ENCODING": "gzip"},
    "openmetrics+gzip": {"HTTP_ACCEPT": OPENMETRICS, "HTTP_ACCEPT_ENCODING": "gzip"},
}


class _Answer:
    """The poller's source: the same answer at every poll, from memory."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T:
        return consume(io.BytesIO(self._body))

    def close(self, timeout: float = 3.0) -> None:
        return None


def _server() -> ServerConfig:
    return ServerConfig(
        name="em01",
        url="https://em01.corp.local:9398",
        username="CORP\\svc_monitoring",
        password="bench-Pa55word",  # noqa: S106 - nothing is logged on to
    )


def _exporter(body: bytes) -> Exporter:
    exporter = Exporter(
        clock=lambda: TAKEN_AT.timestamp(),
        client_factory=lambda server, on_logon: _Answer(body),
    )
    exporter.apply(Config(servers=(_server(),)))
    (poller,) = exporter.pollers()
    for _ in range(2):  # the baseline, then a steady poll: counters exist, gauges are fresh
        if not poller.poll_once():
            raise RuntimeError(f"the poll failed: {poller.status.last_error}")
    return exporter


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def _scrape(app: WSGIApplication, way: dict[str, str]) -> bytes:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "", **way}
    return b"".join(app(environ, _start_response))


def median_ms(run: Callable[[], object], rounds: int, warm_up: int = 20) -> float:
    for _ in range(warm_up):
        run()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _openmetrics(registry: CollectorRegistry) -> bytes:
    text: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    return text


def _registry_of(*collectors: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


def _interleaved(runs: dict[int, Callable[[], object]], rounds: int) -> dict[int, float]:
    """The median of each run, the runs taking turns (in alternating order), so that a
    busy moment of the machine falls on all of them alike."""
    for run in runs.values():
        for _ in range(20):
            run()
    times: dict[int, list[float]] = {n: [] for n in runs}
    order = list(runs)
    for i in range(rounds):
        for n in order if i % 2 else reversed(order):
            started = time.perf_counter()
            runs[n]()
            times[n].append(time.perf_counter() - started)
    return {n: statistics.median(t) * 1000 for n, t in times.items()}


def _breakdown(exporter: Exporter, rounds: int) -> dict[str, float]:
    """Where the time of one OpenMetrics scrape goes, without the cache. The first scrape
    after a poll formats the session families anew: that is their cost."""
    sessions = _registry_of(SessionCollector(exporter.states, clock=lambda: TAKEN_AT.timestamp()))
    own = CollectorRegistry(auto_describe=False)
    ExporterMetrics(own).add_server("em01")
    process = ProcessCollector(registry=None)
    text = _openmetrics(exporter.registry)
    parts: dict[str, Callable[[], object]] = {
        "format:session-families": lambda: _openmetrics(sessions),
        "format:self-metrics": lambda: _openmetrics(own),
        "collect:process": lambda: list(process.collect()),
        "gzip:level-1": lambda: gzip.compress(text, compresslevel=1),
        "gzip:level-9": lambda: gzip.compress(text, compresslevel=9),
    }
    out = {name: median_ms(run, rounds) for name, run in parts.items()}
    out["bytes:openmetrics"] = len(text)
    out["bytes:gzip-level-1"] = len(gzip.compress(text, compresslevel=1))
    out["bytes:gzip-level-9"] = len(gzip.compress(text, compresslevel=9))
    return out


def measure(paths: dict[int, Path], rounds: int) -> dict[int, dict[str, float]]:
    """For each answer (by its number of sessions), one exporter; then their scrapes."""
    exporters = {n: _exporter(path.read_bytes()) for n, path in paths.items()}
    ours = {n: make_app(e.registry, e.server_infos, "/metrics") for n, e in exporters.items()}
    before = {n: make_wsgi_app(e.registry) for n, e in exporters.items()}
    out: dict[int, dict[str, float]] = {n: {} for n in paths}
    for name, way in WAYS.items():
        for prefix, apps, count in (("", ours, rounds), ("before:", before, rounds // 4)):
            runs: dict[int, Callable[[], object]] = {
                n: partial(_scrape, app, way) for n, app in apps.items()
            }
            for n, ms in _interleaved(runs, count).items():
                out[n][prefix + name] = ms
    for n, exporter in exporters.items():
        out[n].update(_breakdown(exporter, rounds // 4))
    return out


def main(argv: list[str]) -> int:
    """``python -m bench.render ROUNDS N=FILE...``"""
    rounds, *answers = argv
    paths = {int(n): Path(path) for n, _, path in (a.partition("=") for a in answers)}
    print(json.dumps({str(n): figures for n, figures in measure(paths, int(rounds)).items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
