"""The families a collector yielded last, kept while what they were made of is unchanged.

A collector's inputs are immutable objects swapped whole (snapshots, ledger views, feed
states) and a few plain values (server names, whether a snapshot is still shown, the
redactor's generation). While they are the same, the collector yields the very Metric objects
it yielded before, which the telemetry path uses to reuse their formatted text
(exporter.exposition). The families are never changed once yielded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import Metric

_PLAIN = (str, int, float, bool, type(None))


class RenderCache:
    def __init__(self) -> None:
        self._last: tuple[tuple[object, ...], tuple[Metric, ...]] | None = None

    def families(
        self, inputs: tuple[object, ...], build: Callable[[], Iterable[Metric]]
    ) -> tuple[Metric, ...]:
        """The families built from ``inputs``: those of the last call if its inputs were the
        same (plain values equal, objects identical), else ``build()``'s."""
        last = self._last
        if last is None or not _same(last[0], inputs):
            last = (inputs, tuple(build()))
            # One attribute swap: a concurrent scrape sees the old pair or the new one.
            self._last = last
        return last[1]


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return len(a) == len(b) and all(
        x is y or (isinstance(x, _PLAIN) and type(x) is type(y) and x == y)
        for x, y in zip(a, b, strict=True)
    )
