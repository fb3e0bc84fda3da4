"""The cost of one scrape: ``python -m bench.render FILE`` prints one JSON object.

A real exporter (exporter.app.Exporter: its registry, self-metrics, process collector and
session collector) polls the XML answer in FILE twice through its real poller, from memory;
then its real HTTP app (exporter.web.make_app) answers the telemetry path many times, and
the median of each way of asking is reported: plain text, text with gzip, and what
Prometheus asks for (``Accept: application/openmetrics-text; version=1.0.0`` with
``Accept-Encoding: gzip``). The same registry behind prometheus-client's own app is
measured too, as the "before". The breakdown says where a scrape's time goes.
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


def measure(path: Path, rounds: int) -> dict[str, Any]:
    body = path.read_bytes()
    exporter = _exporter(body)
    ours = make_app(exporter.registry, exporter.server_infos, "/metrics")
    before = make_wsgi_app(exporter.registry)
    out: dict[str, Any] = {}
    for name, way in WAYS.items():
        out[name] = median_ms(partial(_scrape, ours, way), rounds)
        out[f"before:{name}"] = median_ms(partial(_scrape, before, way), rounds // 4)

    # Where the time of one OpenMetrics scrape goes, without the cache. The first scrape
    # after a poll formats the session families anew: that is their cost.
    sessions = _registry_of(SessionCollector(exporter.states, clock=lambda: TAKEN_AT.timestamp()))
    own = CollectorRegistry(auto_describe=False)
    ExporterMetrics(own).add_server("em01")
    process = ProcessCollector(registry=None)
    text = _openmetrics(exporter.registry)
    parts = {
        "format:session-families": lambda: _openmetrics(sessions),
        "format:self-metrics": lambda: _openmetrics(own),
        "collect:process": lambda: list(process.collect()),
        "gzip:level-1": lambda: gzip.compress(text, compresslevel=1),
        "gzip:level-9": lambda: gzip.compress(text, compresslevel=9),
    }
    for name, run in parts.items():
        out[name] = median_ms(run, rounds // 4)
    out["bytes:openmetrics"] = len(text)
    out["bytes:gzip-level-1"] = len(gzip.compress(text, compresslevel=1))
    out["bytes:gzip-level-9"] = len(gzip.compress(text, compresslevel=9))
    return out


def main(argv: list[str]) -> int:
    path, rounds = argv
    print(json.dumps(measure(Path(path), int(rounds))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
