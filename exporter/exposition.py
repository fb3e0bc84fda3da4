"""The telemetry path's answer: the registry in the format the scraper asked for, gzipped
when it accepts gzip.

prometheus-client's own app formats every sample at every scrape and compresses at gzip's
slowest level. The formats here are prometheus-client's own (its encoders write the text),
but each metric family is formatted once per object: a collector that yields the very same
Metric object again, as SessionCollector does while its snapshots are unchanged, gets the
text written for it before. Families built afresh at each scrape, as every prometheus-client
metric and the process collector's are, are formatted afresh, so a self-metric is never
stale. gzip runs at level 1: an exposition is small and repetitive, and level 1 already
shrinks it about eightfold, at a third of the default level's cost.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator
from typing import Final
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric

GZIP_LEVEL: Final = 1
_EOF: Final = b"# EOF\n"
# Formats whose texts are kept (text, OpenMetrics, their versions and escapings): a scraper
# asking for yet another one pushes out the oldest, so odd Accept headers cannot grow memory.
_FORMATS_KEPT: Final = 4

Encoder = Callable[[CollectorRegistry], bytes]


class _One:
    """One family, shaped like the registry an encoder formats."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self._metric


class Exposition:
    """Renders one registry; safe to call from several server threads at once."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        # Per content type: id(family) -> (the family, its text). The family is held, so its
        # id cannot be reused by another object while the entry exists.
        self._texts: dict[str, dict[int, tuple[Metric, bytes]]] = {}

    def render(self, accept: str | None, names: list[str] | None = None) -> tuple[bytes, str]:
        """The body and its Content-Type; ``names`` (``name[]`` parameters) restricts the
        families to those names, as prometheus-client's app does."""
        encoder, content_type = choose_encoder(accept or "")
        if names:
            return encoder(self._registry.restricted_registry(names)), content_type
        openmetrics = content_type.startswith("application/openmetrics-text")
        known = self._texts.get(content_type, {})
        kept: dict[int, tuple[Metric, bytes]] = {}
        parts: list[bytes] = []
        for metric in self._registry.collect():
            entry = known.get(id(metric))
            if entry is None or entry[0] is not metric:
                entry = (metric, _format(encoder, metric, openmetrics))
            kept[id(metric)] = entry
            parts.append(entry[1])
        if openmetrics:
            parts.append(_EOF)
        self._keep(content_type, kept)
        return b"".join(parts), content_type

    def _keep(self, content_type: str, kept: dict[int, tuple[Metric, bytes]]) -> None:
        # Only the families of this scrape are kept: the cache never outgrows one exposition
        # per format. Each assignment is one swap, so a concurrent scrape reads either.
        texts = dict(self._texts)
        texts.pop(content_type, None)
        texts[content_type] = kept
        while len(texts) > _FORMATS_KEPT:
            del texts[next(iter(texts))]
        self._texts = texts


def _format(encoder: Encoder, metric: Metric, openmetrics: bool) -> bytes:
    text = encoder(_One(metric))  # type: ignore[arg-type]
    # The encoder ends every OpenMetrics document; the exposition has one end, after all.
    return text.removesuffix(_EOF) if openmetrics else text


def metrics_app(registry: CollectorRegistry) -> WSGIApplication:
    """The telemetry path, answering as prometheus-client's app does (GET, OPTIONS, 405 for
    other methods, ``name[]``, Accept and Accept-Encoding negotiation)."""
    exposition = Exposition(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        headers: list[tuple[str, str]]
        if method == "OPTIONS":
            status, headers, body = "200 OK", [("Allow", "OPTIONS,GET")], b""
        elif method != "GET":
            status = "405 Method Not Allowed"
            headers = [("Allow", "OPTIONS,GET")]
            body = f"# HTTP {status}: {method}; use OPTIONS or GET\n".encode()
        else:
            params = parse_qs(environ.get("QUERY_STRING", ""))
            body, content_type = exposition.render(environ.get("HTTP_ACCEPT"), params.get("name[]"))
            status, headers = "200 OK", [("Content-Type", content_type)]
            if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING") or ""):
                body = gzip.compress(body, compresslevel=GZIP_LEVEL)
                headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    return app
