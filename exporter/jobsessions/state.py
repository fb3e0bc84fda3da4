"""What a scrape may know about one server's job-session feed: swapped whole after each poll."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from exporter.feed import FeedHealth
from exporter.jobsessions.plan import QUERIES
from exporter.jobsessions.reduce import EMPTY_VIEW, JobView


def _per_query() -> Mapping[str, int]:
    return MappingProxyType(dict.fromkeys(QUERIES, 0))


@dataclass(frozen=True)
class FeedCounters:
    """The feed's own counters, since start-up (carried over a reload)."""

    truncated: Mapping[str, int] = field(default_factory=_per_query)  # query -> polls cut
    duplicates: int = 0  # entries whose UID its query had already given
    skipped: int = 0  # unreadable entries
    pages: Mapping[str, int] = field(default_factory=_per_query)  # of the last good poll

    def after(
        self, truncated: Mapping[str, bool], duplicates: int, skipped: int, pages: Mapping[str, int]
    ) -> FeedCounters:
        return replace(
            self,
            truncated=MappingProxyType(
                {q: self.truncated.get(q, 0) + int(truncated.get(q, False)) for q in QUERIES}
            ),
            duplicates=self.duplicates + duplicates,
            skipped=self.skipped + skipped,
            pages=MappingProxyType({q: pages.get(q, 0) for q in QUERIES}),
        )


@dataclass(frozen=True)
class JobFeedState:
    server: str
    # How long after the last successful poll the job gauges are still shown.
    stale_after: float
    view: JobView = EMPTY_VIEW
    health: FeedHealth = field(default_factory=FeedHealth)
    counters: FeedCounters = field(default_factory=FeedCounters)
