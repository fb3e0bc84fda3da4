"""The telemetry path's answer: prometheus-client's formats exactly, each family formatted
again only when it changed, and never a stale value."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator

import pytest
from fakes import FIXTURES, ScriptedSource
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter import redact
from exporter.app import Exporter
from exporter.config import Config, ServerConfig
from exporter.exposition import Exposition, metrics_app
from exporter.poller import Poller

T_POLL = 1738022400.0  # the fixtures' sessions are a few minutes older
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# What the operating system measures at each scrape; masked to compare two renders.
_PROCESS = re.compile(rb"^(process_[a-z_]+(?:\{[^}]*\})?) \S+$", re.MULTILINE)


def _masked(text: bytes) -> bytes:
    return _PROCESS.sub(rb"\1 NaN", text)


class _Scene:
    def __init__(self) -> None:
        self.now = T_POLL
        poll1 = (FIXTURES / "golden_poll1.xml").read_bytes()
        poll2 = (FIXTURES / "golden_poll2.xml").read_bytes()
        self.exporter = Exporter(
            clock=lambda: self.now,
            client_factory=lambda server, on_logon: ScriptedSource([poll1, poll2, poll2]),
        )
        self.exporter.apply(
            Config(
                servers=(
                    ServerConfig(
                        name="em01",
                        url="https://em01.example.com:9398",
                        username="svc",
                        password="s3cret-password",
                        poll_interval=60.0,
                        stale_after=180.0,
                    ),
                )
            )
        )
        (self.poller,) = self.exporter.pollers()

    @property
    def registry(self) -> CollectorRegistry:
        return self.exporter.registry

    def poll(self) -> Poller:
        assert self.poller.poll_once()
        return self.poller


@pytest.fixture
def scene() -> _Scene:
    return _Scene()


@pytest.mark.parametrize(
    ("accept", "reference"),
    [
        (None, generate_latest),
        ("text/plain; version=0.0.4", generate_latest),
        (OPENMETRICS, generate_openmetrics),
        ("application/openmetrics-text", generate_openmetrics),
    ],
)
def test_the_body_is_prometheus_clients_own_format(
    scene: _Scene, accept: str | None, reference: object
) -> None:
    scene.poll()
    scene.poll()
    exposition = Exposition(scene.registry)
    for _ in range(2):  # formatted, then reused
        body, _content_type = exposition.render(accept)
        assert _masked(body) == _masked(reference(scene.registry))  # type: ignore[operator]
    assert b"veeam_em_system_sessions{" in body
    if accept is not None and "openmetrics" in accept:
        assert body.endswith(b"\n# EOF\n")
        assert body.count(b"# EOF") == 1


def test_name_parameters_restrict_the_families(scene: _Scene) -> None:
    scene.poll()
    body, _ = Exposition(scene.registry).render(None, ["veeam_em_up"])
    assert body.startswith(b"# HELP veeam_em_up ")
    assert b"veeam_em_system_sessions" not in body


def test_the_session_families_are_the_same_objects_while_nothing_changed(scene: _Scene) -> None:
    scene.poll()
    first = list(scene.registry.collect())
    again = list(scene.registry.collect())
    sessions = [m for m in first if m.name.startswith("veeam_em_system_")]
    assert sessions
    assert all(any(m is n for n in again) for m in sessions)
    # The self-metrics are made afresh at each collect: never reused, never stale.
    up = next(m for m in first if m.name == "veeam_em_up")
    assert not any(m is up for m in again)


def _session_families(scene: _Scene) -> list[Metric]:
    return [m for m in scene.registry.collect() if m.name.startswith("veeam_em_system_")]


def test_a_new_poll_a_stale_snapshot_or_a_new_secret_renders_afresh(scene: _Scene) -> None:
    scene.poll()
    before = _session_families(scene)

    scene.now += 60
    scene.poll()
    after_poll = _session_families(scene)
    assert not any(a is b for a, b in zip(before, after_poll, strict=False))

    scene.now += 10_000  # past stale_after: the gauges go, the counters stay
    stale = _session_families(scene)
    assert not any(a is b for a, b in zip(after_poll, stale, strict=True))
    assert not next(m for m in stale if m.name == "veeam_em_system_sessions").samples
    text = Exposition(scene.registry).render(None)[0]
    assert b"veeam_em_system_sessions{" not in text
    assert b"veeam_em_system_sessions_finished_total{" in text

    kept = _session_families(scene)
    assert all(a is b for a, b in zip(kept, _session_families(scene), strict=True))
    redact.register_secret("a-secret-added-later-7d1c")
    assert not any(a is b for a, b in zip(kept, _session_families(scene), strict=True))


class _Fixed(Collector):
    """Yields the very same family every time, as the session collector does while its
    inputs are unchanged."""

    def __init__(self) -> None:
        self.family = GaugeMetricFamily("fixed", "A family that is never rebuilt.")
        self.family.add_metric([], 1.0)

    def collect(self) -> Iterator[Metric]:
        yield self.family


def test_a_family_yielded_again_is_not_formatted_again_and_a_new_one_is() -> None:
    registry = CollectorRegistry(auto_describe=False)
    fixed = _Fixed()
    registry.register(fixed)
    gauge = Gauge("live", "A self-metric.", registry=registry)
    exposition = Exposition(registry)
    gauge.set(1)
    assert b"fixed 1.0\n" in exposition.render(None)[0]
    # Changing a yielded family breaks the collector's promise; it shows the text is reused.
    fixed.family.samples[0] = fixed.family.samples[0]._replace(value=2.0)
    gauge.set(2)
    body = exposition.render(None)[0]
    assert b"fixed 1.0\n" in body
    assert b"live 2.0\n" in body
    # A new object is formatted afresh.
    fixed.family = GaugeMetricFamily("fixed", "A family that is never rebuilt.", value=3.0)
    assert b"fixed 3.0\n" in exposition.render(None)[0]


def test_odd_accept_headers_cannot_grow_the_kept_texts(scene: _Scene) -> None:
    scene.poll()
    exposition = Exposition(scene.registry)
    for minor in range(20):
        exposition.render(f"application/openmetrics-text; version=1.{minor}.0")
    assert len(exposition._texts) <= 4


def _call(app: object, method: str = "GET", **environ: str) -> tuple[str, dict[str, str], bytes]:
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc: object = None) -> None:
        seen.append((status, headers))

    body = b"".join(
        app(  # type: ignore[operator]
            {"REQUEST_METHOD": method, "PATH_INFO": "/metrics", **environ}, start_response
        )
    )
    status, headers = seen[0]
    return status, dict(headers), body


def test_the_app_negotiates_as_prometheus_clients_does(scene: _Scene) -> None:
    scene.poll()
    app = metrics_app(scene.registry)

    status, headers, body = _call(
        app, HTTP_ACCEPT=OPENMETRICS, HTTP_ACCEPT_ENCODING="gzip, deflate"
    )
    assert status == "200 OK"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert int(headers["Content-Length"]) == len(body)
    text = gzip.decompress(body)
    assert _masked(text) == _masked(generate_openmetrics(scene.registry))  # type: ignore[no-untyped-call]

    status, headers, body = _call(app)
    assert headers["Content-Type"].startswith("text/plain")
    assert "Content-Encoding" not in headers
    assert b'veeam_em_up{server="em01"} 1.0\n' in body

    status, headers, _ = _call(app, "OPTIONS")
    assert (status, headers["Allow"]) == ("200 OK", "OPTIONS,GET")
    status, headers, body = _call(app, "POST")
    assert status == "405 Method Not Allowed"
    assert body == b"# HTTP 405 Method Not Allowed: POST; use OPTIONS or GET\n"

    _, _, body = _call(app, QUERY_STRING="name[]=veeam_em_polls_total")
    assert body.startswith(b"# HELP veeam_em_polls_total ")
    assert b"veeam_em_up" not in body
