"""The job-session feed on the seam: plan, parse and reduce put together, per server.

One poll: the window query (``bootstrap_window`` until a poll succeeded, then ``window``) and the
running query, each page by page until the last page, an empty one or ``max_pages``; then the
lookup of every session that was running and is in neither answer (404: the EM no longer has
it, forgotten). Every request goes through the server's shared client; any failure fails the
whole poll, which then changes nothing. A lookup answered with another error, or with a body
that cannot be read, is retried at the next polls and given up after a few.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import IO, Any, TypeVar

from prometheus_client.registry import Collector

from exporter.config import ServerConfig
from exporter.feed import Commit, Feed, FeedContext, FeedHealth, counted, serves_feeds
from exporter.jobsessions import plan
from exporter.jobsessions.collector import JobSessionCollector
from exporter.jobsessions.parse import read_entity, read_query
from exporter.jobsessions.plan import Paging, Query, Stop
from exporter.jobsessions.reduce import UID_MARGIN_SECONDS, JobLedger, PollAnswer
from exporter.jobsessions.state import JobFeedState
from exporter.logs import get_logger
from exporter.parse import ParseError
from exporter.reasons import Forbidden, StatusError

T = TypeVar("T")

NAME = "job_sessions"
# The job gauges stay this many feed intervals after the last successful poll (at least the
# server's own stale_after), as the system-session gauges stay three poll intervals by default.
STALE_INTERVALS = 3


def stale_after(server: ServerConfig) -> float:
    return max(server.stale_after, STALE_INTERVALS * server.job_sessions.poll_interval)


class JobSessionsFeed:
    """One server's backup job sessions. Polled by one thread; ``state`` is read by any."""

    def __init__(self, server: ServerConfig, previous: JobSessionsFeed | None = None) -> None:
        self.server = server
        self.config = server.job_sessions
        self._log = get_logger("poller", server=server.name, feed=NAME)
        retention = max(self.config.window, self.config.bootstrap_window) + UID_MARGIN_SECONDS
        self._last_truncated: dict[str, bool] = {}  # of the last successful poll
        if previous is None:
            self.ledger = JobLedger(retention)
            self._state = JobFeedState(server=server.name, stale_after=stale_after(server))
            self._running_fallback = False
        else:
            # Taken over, not copied: no session is counted twice, no counter resets.
            self.ledger = previous.ledger
            self.ledger.retention = max(self.ledger.retention, retention)
            self._state = replace(previous.state, stale_after=stale_after(server))
            self._running_fallback = previous._running_fallback
            self._last_truncated = dict(previous._last_truncated)

    @property
    def name(self) -> str:
        return NAME

    @property
    def interval(self) -> float:
        return self.config.poll_interval

    @property
    def state(self) -> JobFeedState:
        return self._state

    @property
    def health(self) -> FeedHealth:
        return self._state.health

    def poll(self, source: Any, now: float) -> Commit:
        bootstrap = not self.ledger.committed
        window = self.config.bootstrap_window if bootstrap else self.config.window
        answer = PollAnswer(self.config.job_types.allows)
        pages: dict[str, int] = {}
        truncated: dict[str, bool] = {}
        self._read(source, plan.window_query(now, window), answer, pages, truncated)
        try:
            running = plan.running_query(self._running_fallback)
            self._read(source, running, answer, pages, truncated)
        except StatusError as exc:
            if exc.status != 400 or self._running_fallback:
                raise
            self._running_fallback = True
            self._log.info(
                "the EM refused the running query's != filter; asking for each running state",
                err=str(exc),
            )
            self._read(source, plan.running_query(True), answer, pages, truncated)
        self._look_up_vanished(source, answer)
        return lambda duration: self._commit(answer, now, duration, pages, truncated, bootstrap)

    def _read(
        self,
        source: Any,
        query: Query,
        answer: PollAnswer,
        pages: dict[str, int],
        truncated: dict[str, bool],
    ) -> None:
        fmt = self.server.format
        answer.begin_query()
        page = 1

        def consume(stream: IO[bytes]) -> tuple[Paging | None, int]:
            entries = read_query(stream, fmt)
            count = answer.add_all(entries)
            return entries.paging, count

        while True:
            paging, count = _get(source, query.path(page, self.config.page_size), consume)
            step = plan.next_page(page, count, paging, self.config.max_pages)
            if isinstance(step, Stop):
                truncated[query.name] = step is Stop.TRUNCATED
                pages[query.name] = page
                return
            page = step

    def _look_up_vanished(self, source: Any, answer: PollAnswer) -> None:
        fmt = self.server.format
        answer.begin_query()
        for record in self.ledger.vanished(answer)[: plan.MAX_LOOKUPS]:
            guid = plan.session_guid(record.uid)
            if guid is None:  # nothing to ask for
                answer.forgotten.add(record.uid)
                continue
            try:
                found = _get(source, plan.lookup_path(guid), lambda s: list(read_entity(s, fmt)))
            except StatusError as exc:
                if exc.status == 404:
                    answer.forgotten.add(record.uid)
                else:
                    answer.failed_lookups.add(record.uid)
                    self._log.info("looking up a vanished session failed", err=str(exc))
                continue
            except ParseError as exc:
                answer.failed_lookups.add(record.uid)
                self._log.info("a vanished session's answer is unreadable", err=str(exc))
                continue
            answer.add_all(found)
            if record.uid not in answer.seen:  # the EM answered another session
                answer.failed_lookups.add(record.uid)

    def _commit(
        self,
        answer: PollAnswer,
        now: float,
        duration: float,
        pages: dict[str, int],
        truncated: dict[str, bool],
        bootstrap: bool,
    ) -> None:
        counted = len(self.ledger)
        view = self.ledger.commit(answer, now=now)
        self._last_truncated = dict(truncated)
        skipped = sum(answer.unreadable.values())
        self._state = replace(
            self._state,
            view=view,
            health=self._state.health.succeeded(now, duration),
            counters=self._state.counters.after(truncated, answer.duplicates, skipped, pages),
        )
        if skipped:
            self._log.debug(
                "unreadable job session entries skipped",
                entries=skipped,
                why="; ".join(f"{why}: {n}" for why, n in sorted(answer.unreadable.items())),
            )
        cut = sorted(query for query, was in truncated.items() if was)
        if cut:
            self._log.warning(
                "job session queries cut at max_pages; the oldest sessions were not read",
                queries=",".join(cut),
                max_pages=self.config.max_pages,
                page_size=self.config.page_size,
            )
        self._log.debug(
            "poll succeeded",
            bootstrap=bootstrap,
            sessions=view.sessions,
            jobs=len(view.jobs),
            new_uids=len(self.ledger) - counted,
            duration=f"{duration:.3f}s",
        )

    def summary(self) -> str:
        """``412 sessions of 37 jobs`` (after ``job_types``), and the queries cut at
        ``max_pages`` if any were."""
        view = self._state.view
        text = counted(view.sessions, "session", len(view.jobs), "job")
        cut = sorted(q for q, n in self._last_truncated.items() if n)
        if cut:
            pages = self.config.max_pages
            text += (
                f"; the {' and '.join(cut)} quer{'ies' if len(cut) > 1 else 'y'} cut at "
                f"max_pages ({pages} page{'s' if pages != 1 else ''} of "
                f"{self.config.page_size}): raise max_pages or page_size"
            )
        return text

    def failed(self, reason: str, message: str, now: float, duration: float) -> None:
        self._state = replace(
            self._state, health=self._state.health.failed(reason, message, duration)
        )


def _get(source: Any, path: str, consume: Callable[[IO[bytes]], T]) -> T:
    """One GET of the feed. A 403 is the account's role refusing the job sessions: it fails
    this feed's poll and leaves the logon session, which the system sessions use too, alone."""
    try:
        return source.get(path, consume, forbidden_relogon=False)  # type: ignore[no-any-return]
    except Forbidden as exc:
        raise Forbidden(
            f"{exc}; give it Portal Administrator or set job_sessions.enabled: false"
        ) from None


class JobSessions:
    """The kind: a job-session feed for every server that enables it."""

    name = NAME

    def create(self, context: FeedContext) -> JobSessionsFeed | None:
        if not context.server.job_sessions.enabled or not serves_feeds(context.source):
            return None
        previous = context.previous
        return JobSessionsFeed(
            context.server, previous if isinstance(previous, JobSessionsFeed) else None
        )

    def renderer(
        self, feeds: Callable[[], Sequence[Feed]], clock: Callable[[], float]
    ) -> Collector:
        def states() -> list[JobFeedState]:
            return [feed.state for feed in feeds() if isinstance(feed, JobSessionsFeed)]

        return JobSessionCollector(states, clock=clock)


JOB_SESSIONS = JobSessions()
