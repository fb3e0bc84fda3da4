"""The first feed: the EM's own system sessions (``GET /api/systemSessions?format=Entity``).

Its plan is one unpaged request, its parser exporter.parse, its reducer exporter.snapshot (the
per-answer ``ServerSnapshot`` and the ``FinishedLedger``), its renderer exporter.collector's
``SessionCollector``. It is the server's primary feed: its outcome is the server's poll health
(``veeam_em_up``, ``veeam_em_polls_total``, ... in exporter.health), the landing page's status
and the readiness check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import IO, Any, BinaryIO, Protocol, TypeVar

from prometheus_client.registry import Collector

from exporter.collector import SessionCollector
from exporter.config import ServerConfig
from exporter.feed import Commit, Feed, FeedContext, counted
from exporter.health import ExporterMetrics
from exporter.logs import get_logger
from exporter.parse import iter_entries
from exporter.redact import redact
from exporter.snapshot import FinishedLedger, PollResult, build
from exporter.state import ServerState

T = TypeVar("T")

NAME = "system_sessions"


class SessionSource(Protocol):
    """Where the system sessions come from: the EM client, or anything shaped like it."""

    def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T: ...

    def close(self, timeout: float = 3.0) -> None: ...


@dataclass(frozen=True)
class PollStatus:
    """For the landing page and the readiness check."""

    last_poll_at: float | None = None
    last_error: str | None = None


class SystemSessionsFeed:
    """The system sessions of one server: its ledger, its last state and its poll health.

    Used by the server's poller thread; ``state`` and ``status`` are read from any thread.
    """

    def __init__(
        self,
        server: ServerConfig,
        metrics: ExporterMetrics,
        previous: SystemSessionsFeed | None = None,
    ) -> None:
        """``previous`` is the feed of the poller this one replaces after a reload: its ledger
        is taken over, not copied, so that no session is counted twice and no counter resets."""
        self.server = server
        self._metrics = metrics
        self._log = get_logger("poller", server=server.name)
        if previous is None:
            self.ledger = FinishedLedger()
            self._state = ServerState(
                server=server.name, stale_after=server.stale_after, ledger=self.ledger.view()
            )
            self._status = PollStatus()
        else:
            self.ledger = previous.ledger
            self._state = replace(previous.state, stale_after=server.stale_after)
            self._status = previous.status

    @property
    def name(self) -> str:
        return NAME

    @property
    def interval(self) -> float:
        return self.server.poll_interval

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def status(self) -> PollStatus:
        return self._status

    def poll(self, source: Any, now: float) -> Commit:
        self._metrics.polls.labels(self.server.name).inc()
        result = source.fetch_sessions(lambda stream: self._consume(stream, now))
        return lambda duration: self._commit(result, now, duration)

    def _consume(self, stream: IO[bytes], now: float) -> PollResult:
        return build(
            iter_entries(stream, self.server.format),
            taken_at=now,
            allows=self.server.session_types.allows,
            ledger=self.ledger,
            max_types=self.server.max_session_types,
        )

    def _commit(self, result: PollResult, now: float, duration: float) -> None:
        name = self.server.name
        self._metrics.poll_duration.labels(name).set(duration)
        view = self.ledger.commit(result, now=now)
        self._state = ServerState(
            server=name,
            stale_after=self.server.stale_after,
            snapshot=result.snapshot,
            ledger=view,
        )
        self._metrics.up.labels(name).set(1)
        self._metrics.last_success.labels(name).set(now)
        if result.skipped:
            self._metrics.skipped.labels(name).inc(result.skipped)
        if result.unreadable:
            self._log.debug(
                "unreadable session entries skipped",
                entries=sum(result.unreadable.values()),
                why="; ".join(f"{why}: {n}" for why, n in sorted(result.unreadable.items())),
            )
        if result.dropped_types:
            self._log.warning(
                "session types over max_session_types dropped",
                types=len(result.dropped_types),
                entries=result.dropped_entries,
                max_session_types=self.server.max_session_types,
            )
        self._log.debug(
            "poll succeeded",
            sessions=sum(result.snapshot.sessions.values()),
            new_finished=result.fresh,
            skipped=result.skipped,
            duration=f"{duration:.3f}s",
        )
        self._status = PollStatus(last_poll_at=now)

    def summary(self) -> str:
        """``2913 sessions of 12 types``: what the exporter exports, after the type filter and
        ``max_session_types``."""
        snapshot = self._state.snapshot
        if snapshot is None:
            return counted(0, "session", 0, "type")
        return counted(sum(snapshot.sessions.values()), "session", len(snapshot.types), "type")

    def failed(self, reason: str, message: str, now: float, duration: float) -> None:
        name = self.server.name
        self._metrics.poll_duration.labels(name).set(duration)
        self._metrics.up.labels(name).set(0)
        self._metrics.errors.labels(name, reason).inc()
        # Shown on the landing page: the error may quote what the EM answered.
        self._status = PollStatus(last_poll_at=now, last_error=redact(f"{reason}: {message}"))


class SystemSessions:
    """The kind: a system-session feed for every server, rendered by SessionCollector."""

    name = NAME

    def create(self, context: FeedContext) -> SystemSessionsFeed:
        previous = context.previous
        return SystemSessionsFeed(
            context.server,
            context.metrics,
            previous if isinstance(previous, SystemSessionsFeed) else None,
        )

    def renderer(
        self, feeds: Callable[[], Sequence[Feed]], clock: Callable[[], float]
    ) -> Collector:
        def states() -> list[ServerState]:
            return [feed.state for feed in feeds() if isinstance(feed, SystemSessionsFeed)]

        return SessionCollector(states, clock=clock)


SYSTEM_SESSIONS = SystemSessions()
