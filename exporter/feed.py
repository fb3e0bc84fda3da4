"""The feed seam: one EM resource, read for one server on a schedule of its own.

A feed is four parts, each written once for its resource:

- a **request plan**: the paths and queries to GET (paging included), sent through the server's
  shared client (:class:`FeedSource`), whose logon session every feed of the server uses;
- a **streaming parser**: bytes to records, never a tree;
- a **pure reducer**: the records and the feed's previous state to a new immutable state, its
  ledger of counted sessions inside;
- a **renderer**: a prometheus-client ``Collector`` over the states of every server's feed, which
  never does I/O.

The poller owns what the feeds of a server share (the client, the logon guard, one thread per
feed) and runs each feed the same way: ``poll`` does the requests, parses and reduces, and
returns a commit; the poller calls the commit with the poll's duration once it knows the poll
succeeded, or ``failed`` with the reason. Nothing a feed does touches another feed: a feed's
failure is counted by that feed alone.

A resource is added by writing its :class:`FeedKind` and listing it in ``exporter.feeds.FEEDS``;
the poller creates its feed for each server (``create`` may decline: disabled in the
configuration, or a client that cannot serve it) and the exporter registers its renderer.

This module is pure: the shapes of the seam, and the health that every feed other than the
system sessions reports (``veeam_em_<feed>_up`` and its companions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, BinaryIO, Protocol, TypeVar, runtime_checkable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.config import ServerConfig
from exporter.health import ExporterMetrics
from exporter.reasons import REASONS

T = TypeVar("T")

# Called with the poll's wall time: makes what the poll read visible, in one swap.
Commit = Callable[[float], None]


class FeedSource(Protocol):
    """What a feed asks of the server's client (exporter.emclient.EMClient.get)."""

    def get(
        self, path: str, consume: Callable[[BinaryIO], T], *, forbidden_relogon: bool = True
    ) -> T: ...


def serves_feeds(source: object) -> bool:
    """Whether a client can serve feeds other than the system sessions.

    The EM client always can; a test double made only for the system sessions cannot, and the
    poller then runs the system feed alone.
    """
    return callable(getattr(source, "get", None))


class Feed(Protocol):
    """One resource of one server: what the poller runs on the feed's schedule."""

    @property
    def name(self) -> str:
        """The feed's name in configuration terms (``job_sessions``), logs and threads."""
        ...

    @property
    def interval(self) -> float:
        """Seconds between the starts of two polls of this feed."""
        ...

    def poll(self, source: Any, now: float) -> Commit:
        """Read and reduce the resource as of ``now``; nothing is visible until the commit.

        Raises PollError (or ParseError for an unreadable answer); anything else is a bug that
        the poller counts as ``parse``.
        """
        ...

    def failed(self, reason: str, message: str, now: float, duration: float) -> None:
        """Record a failed poll; what was visible stays."""
        ...

    def summary(self) -> str:
        """What the last successful poll read, in a few words (``--em.check`` prints it)."""
        ...


@runtime_checkable
class HealthReporting(Feed, Protocol):
    """A feed that reports its own health (every feed but the system sessions, whose health is
    the server's): the landing page shows it beside the server."""

    @property
    def health(self) -> FeedHealth: ...


@dataclass(frozen=True)
class FeedContext:
    """What a feed kind may know when it creates a server's feed."""

    server: ServerConfig
    # The server's client, shared by every feed of the server.
    source: object
    metrics: ExporterMetrics
    # The feed of the same kind of the poller this one replaces after a reload, or None: its
    # state (counters, ledger) carries over.
    previous: Feed | None = None


class FeedKind(Protocol):
    """A resource the exporter reads: creates its feed per server, and renders them all."""

    @property
    def name(self) -> str: ...

    def create(self, context: FeedContext) -> Feed | None:
        """This server's feed, or None when it is not read for this server."""
        ...

    def renderer(
        self, feeds: Callable[[], Sequence[Feed]], clock: Callable[[], float]
    ) -> Collector:
        """A collector over this kind's feeds of every server (``feeds`` returns them)."""
        ...


def counted(items: int, item: str, groups: int, group: str) -> str:
    """``2913 sessions of 12 types``: the words of a feed's summary."""
    return f"{_plural(items, item)} of {_plural(groups, group)}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


# --- the health of a feed ------------------------------------------------------------------

_NO_ERRORS: Mapping[str, int] = MappingProxyType(dict.fromkeys(REASONS, 0))


@dataclass(frozen=True)
class FeedHealth:
    """How a feed's polls went, as of its last poll: immutable, swapped whole."""

    up: bool = False
    duration: float = 0.0  # of the last poll; 0 until one ends
    last_success: float | None = None
    errors: Mapping[str, int] = field(default_factory=lambda: _NO_ERRORS)
    last_error: str | None = None

    def succeeded(self, now: float, duration: float) -> FeedHealth:
        return replace(self, up=True, duration=duration, last_success=now, last_error=None)

    def failed(self, reason: str, message: str, duration: float) -> FeedHealth:
        errors = dict(self.errors)
        errors[reason] = errors.get(reason, 0) + 1
        return replace(
            self,
            up=False,
            duration=duration,
            errors=MappingProxyType(errors),
            last_error=f"{reason}: {message}",
        )


def health_families(
    prefix: str, what: str, health: Sequence[tuple[str, FeedHealth]]
) -> Iterator[Metric]:
    """``{prefix}_up``, ``_poll_duration_seconds``, ``_last_successful_poll_timestamp_seconds``
    and ``_poll_errors_total{reason}`` (every reason, 0 until it happens) per server."""
    up = GaugeMetricFamily(
        f"{prefix}_up", f"1 if the last poll of the {what} succeeded, else 0.", labels=["server"]
    )
    duration = GaugeMetricFamily(
        f"{prefix}_poll_duration_seconds",
        f"Wall time of the last poll of the {what}.",
        labels=["server"],
    )
    last_success = GaugeMetricFamily(
        f"{prefix}_last_successful_poll_timestamp_seconds",
        f"Unix time of the last successful poll of the {what}.",
        labels=["server"],
    )
    errors = CounterMetricFamily(
        f"{prefix}_poll_errors",
        f"Failed polls of the {what} by reason.",
        labels=["server", "reason"],
    )
    for server, state in health:
        up.add_metric([server], 1.0 if state.up else 0.0)
        duration.add_metric([server], state.duration)
        if state.last_success is not None:
            last_success.add_metric([server], state.last_success)
        for reason in REASONS:
            errors.add_metric([server, reason], state.errors.get(reason, 0))
    yield up
    yield duration
    yield last_success
    yield errors
