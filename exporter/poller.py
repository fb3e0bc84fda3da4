"""One thread per EM server: schedule, backoff, self-metrics and the atomic snapshot swap.

A poll is logon-if-needed, fetch, stream-parse and build; only a poll that completes swaps
in a new ``ServerState``. A failed poll leaves the previous one in place (the collector
hides it once it is older than ``stale_after``) and is retried with a doubling backoff
capped at the poll interval. Nothing here blocks a scrape or another server.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import IO, BinaryIO, Protocol, TypeVar

from exporter.config import ServerConfig
from exporter.emclient import EMClient
from exporter.health import ExporterMetrics
from exporter.logs import get_logger
from exporter.parse import ParseError, iter_entries
from exporter.reasons import PollError
from exporter.snapshot import FinishedLedger, PollResult, build
from exporter.state import ServerState

BACKOFF_START = 5.0  # seconds before the first retry; doubles up to the poll interval
JITTER = 0.05  # up to 5% of each delay, so that several exporters do not poll in lockstep


T = TypeVar("T")


class SessionSource(Protocol):
    """Where a poller gets its answers from: the EM client, or anything shaped like it."""

    def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T: ...

    def close(self, timeout: float = 3.0) -> None: ...


ClientFactory = Callable[[ServerConfig, Callable[[], None]], SessionSource]


def em_client(server: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
    return EMClient(server, on_logon=on_logon)


@dataclass(frozen=True)
class PollStatus:
    """For the landing page and the readiness check."""

    last_poll_at: float | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Handover:
    """What a stopped poller passes to the one that replaces it after a reload.

    The ledger is handed over, not copied: the successor goes on counting in it, so no
    finished session is counted twice and no counter goes back to 0.
    """

    ledger: FinishedLedger
    state: ServerState
    status: PollStatus
    failures: int  # consecutive failed polls, which set the backoff
    polled_once: bool


class Poller:
    def __init__(
        self,
        server: ServerConfig,
        metrics: ExporterMetrics,
        *,
        client_factory: ClientFactory = em_client,
        succeeds: Poller | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``succeeds`` is the poller this one replaces after a reload changed the server's
        settings: its counters, last snapshot and health carry over, so a reload neither
        resets counters nor shows the server as down until the next poll ends."""
        self.server = server
        self._metrics = metrics
        self._client = client_factory(server, self._on_logon)
        self._clock = clock
        self._monotonic = monotonic
        self._log = get_logger("poller", server=server.name)
        self._stop = threading.Event()
        self._polled = threading.Event()
        self._thread: threading.Thread | None = None
        if succeeds is None:
            self._ledger = FinishedLedger()
            self._state = ServerState(
                server=server.name, stale_after=server.stale_after, ledger=self._ledger.view()
            )
            self._status = PollStatus()
            self._failures = 0
            metrics.add_server(server.name)
        else:
            handover = succeeds.handover()
            self._ledger = handover.ledger
            self._state = replace(handover.state, stale_after=server.stale_after)
            self._status = handover.status
            self._failures = handover.failures
            if handover.polled_once:
                self._polled.set()

    # --- read side (any thread) -----------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def status(self) -> PollStatus:
        return self._status

    def polled_once(self) -> bool:
        return self._polled.is_set()

    def wait_polled(self, timeout: float) -> bool:
        return self._polled.wait(timeout)

    def handover(self) -> Handover:
        """What a successor needs to carry on where this poller stopped."""
        return Handover(
            ledger=self._ledger,
            state=self._state,
            status=self._status,
            failures=self._failures,
            polled_once=self.polled_once(),
        )

    # --- the poll ---------------------------------------------------------------------------

    def _on_logon(self) -> None:
        self._metrics.logins.labels(self.server.name).inc()
        self._log.info("logged on to the EM")

    def poll_once(self) -> bool:
        """Poll once; True when a new snapshot was swapped in. Never raises."""
        name = self.server.name
        self._metrics.polls.labels(name).inc()
        started = self._monotonic()
        # One reading of the clock dates the snapshot, the success gauge and staleness alike.
        now = self._clock()
        error: str | None = None
        reason = ""
        try:
            result = self._client.fetch_sessions(lambda stream: self._consume(stream, now))
        except PollError as exc:
            reason, error = exc.reason, str(exc)
        except ParseError as exc:
            reason, error = "parse", str(exc)
        except Exception as exc:  # a bug must cost one poll, never the polling thread
            reason, error = "parse", f"unexpected {type(exc).__name__} while reading the answer"
            self._log.error("unexpected error in poll", err=f"{type(exc).__name__}: {exc}")
        duration = self._monotonic() - started
        self._metrics.poll_duration.labels(name).set(duration)

        if error is None:
            view = self._ledger.commit(result, now=now)
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
            if result.dropped_types:
                self._log.warning(
                    "session types over max_session_types dropped",
                    types=len(result.dropped_types),
                    entries=result.dropped_entries,
                    max_session_types=self.server.max_session_types,
                )
            if self._failures:
                self._log.info("poll succeeded again", after_failures=self._failures)
            self._log.debug(
                "poll succeeded",
                sessions=sum(result.snapshot.sessions.values()),
                new_finished=len(result.newly_finished),
                skipped=result.skipped,
                duration=f"{duration:.3f}s",
            )
            self._failures = 0
            self._status = PollStatus(last_poll_at=now)
        else:
            self._failures += 1
            self._metrics.up.labels(name).set(0)
            self._metrics.errors.labels(name, reason).inc()
            self._log.warning("poll failed", reason=reason, err=error, failures=self._failures)
            self._status = PollStatus(last_poll_at=now, last_error=f"{reason}: {error}")
        self._polled.set()
        return error is None

    def _consume(self, stream: IO[bytes], now: float) -> PollResult:
        return build(
            iter_entries(stream, self.server.format),
            taken_at=now,
            allows=self.server.session_types.allows,
            already_counted=self._ledger.__contains__,
            counted_types=self._ledger.session_types,
            max_types=self.server.max_session_types,
        )

    def next_delay(self, succeeded: bool, rng: random.Random | None = None) -> float:
        interval = self.server.poll_interval
        if succeeded:
            delay = interval
        else:
            delay = min(interval, min(BACKOFF_START, interval) * 2 ** (self._failures - 1))
        return delay + (rng or random).uniform(0, JITTER * delay)

    # --- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        if self.server.tls.insecure_skip_verify:
            self._log.warning("TLS certificate verification is disabled for this EM")
        self._thread = threading.Thread(
            target=self._run, name=f"poller-{self.server.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            ok = self.poll_once()
            # Waiting on the stop event lets stop() cut the wait short.
            self._stop.wait(max(0.0, started + self.next_delay(ok) - time.monotonic()))

    def stop(self, timeout: float = 2.0) -> None:
        """Stop polling and log out; bounded, so shutdown never hangs on a slow EM."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.close(timeout=timeout)
        self._log.info("stopped polling")
