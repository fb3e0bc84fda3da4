"""One thread per EM server: schedule, backoff, self-metrics and the atomic snapshot swap.

A poll is logon-if-needed, fetch, stream-parse and build; only a poll that completes swaps
in a new ``ServerState``. A failed poll leaves the previous one in place (the collector
hides it once it is older than ``stale_after``) and is retried with a doubling backoff
capped at the poll interval. Nothing here blocks a scrape or another server.

A wrong password must never lock the EM account: after ``max_logon_failures`` logons in a
row that the EM refused, the poller stops logging on to that server. The suspension ends when
the password file's content changes (looked at every poll), when the configuration is
reloaded, or after ``logon_retry_after`` for a single attempt, which suspends again if refused.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO, BinaryIO, Protocol, TypeVar

from exporter.config import ServerConfig
from exporter.emclient import EMClient
from exporter.health import ExporterMetrics
from exporter.logs import get_logger
from exporter.parse import ParseError, iter_entries
from exporter.reasons import PollError
from exporter.redact import redact, register_credentials
from exporter.secretfile import SecretFileError, read_secret_file
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
    # Refused logons in a row with the secret of this digest: a reload that keeps the password
    # keeps the count, so each reload buys one attempt, not a fresh max_logon_failures.
    refused_logons: int = 0
    secret_digest: bytes = b""
    suspended_until: float | None = None  # a reload ends it; the successor logs that


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
        self._client_factory = client_factory
        self._client = client_factory(server, self._on_logon)
        self._clock = clock
        self._monotonic = monotonic
        self._log = get_logger("poller", server=server.name)
        self._stop = threading.Event()
        self._polled = threading.Event()
        self._thread: threading.Thread | None = None
        # Logon suspension: the suspension itself is also ended from the reload's thread.
        self._guard = threading.Lock()
        self._suspended_until: float | None = None
        self._refused = 0
        self._logon_accepted = False
        self._secret_digest = _digest(server.password)
        self._secret_unreadable = False
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
            if handover.secret_digest == self._secret_digest:
                self._refused = handover.refused_logons
            metrics.logon_suspended.labels(server.name).set(0)
            if handover.suspended_until is not None:
                self._log.info("logons resumed", why="configuration reloaded")

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

    @property
    def logon_suspended_until(self) -> float | None:
        """Unix time of the one retry while logons are suspended, else None."""
        return self._suspended_until

    def handover(self) -> Handover:
        """What a successor needs to carry on where this poller stopped."""
        return Handover(
            ledger=self._ledger,
            state=self._state,
            status=self._status,
            failures=self._failures,
            polled_once=self.polled_once(),
            refused_logons=self._refused,
            secret_digest=self._secret_digest,
            suspended_until=self._suspended_until,
        )

    def config_reloaded(self) -> None:
        """A reload kept this poller (its server is unchanged): a reload is how an operator
        says the account is fixed, so it ends a suspension all the same."""
        self._resume("configuration reloaded")

    # --- the poll ---------------------------------------------------------------------------

    def _on_logon(self) -> None:
        self._logon_accepted = True
        self._metrics.logins.labels(self.server.name).inc()
        self._log.info("logged on to the EM")

    def poll_once(self) -> bool:
        """Poll once; True when a new snapshot was swapped in. Never raises.

        While logons are suspended it attempts nothing (no poll is counted) and returns False.
        """
        self._follow_password_file()
        if not self._may_log_on():
            return False
        self._logon_accepted = False
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
            if self._failures:
                self._log.info("poll succeeded again", after_failures=self._failures)
            self._log.debug(
                "poll succeeded",
                sessions=sum(result.snapshot.sessions.values()),
                new_finished=result.fresh,
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
            # Shown on the landing page: the error may quote what the EM answered.
            self._status = PollStatus(last_poll_at=now, last_error=redact(f"{reason}: {error}"))
        self._judge_logon(reason, now)
        self._polled.set()
        return error is None

    def _consume(self, stream: IO[bytes], now: float) -> PollResult:
        return build(
            iter_entries(stream, self.server.format),
            taken_at=now,
            allows=self.server.session_types.allows,
            ledger=self._ledger,
            max_types=self.server.max_session_types,
        )

    # --- never locking the EM account -----------------------------------------------------

    def _judge_logon(self, reason: str, now: float) -> None:
        """Count refused logons; suspend logons once there were max_logon_failures in a row.

        Reason ``auth`` is also given when the EM accepted a fresh logon and then refused its
        token; that logon was accepted, so it resets the count like a success does. Other
        failures (connection, TLS, timeout, 5xx) say nothing about the password: they neither
        count nor reset, unless a logon was accepted during that poll.
        """
        if self._logon_accepted or not reason:
            self._refused = 0
        elif reason == "auth":
            self._refused += 1
            limit = self.server.max_logon_failures
            if limit and self._refused >= limit:
                self._suspend(now)

    def _suspend(self, now: float) -> None:
        until = now + self.server.logon_retry_after
        with self._guard:
            self._suspended_until = until
        self._metrics.logon_suspended.labels(self.server.name).set(1)
        self._log.warning(
            "logons suspended so as not to lock the EM account; they resume when the password "
            "file changes, on a reload, or with one attempt at the given time",
            refused_logons=self._refused,
            until=_iso(until),
        )

    def _resume(self, why: str) -> None:
        with self._guard:
            was_suspended = self._suspended_until is not None
            self._suspended_until = None
        if was_suspended:
            self._metrics.logon_suspended.labels(self.server.name).set(0)
            self._log.info("logons resumed", why=why)

    def _may_log_on(self) -> bool:
        with self._guard:
            until = self._suspended_until
        if until is None:
            return True
        if self._clock() < until:
            return False
        # The refused count stays at the limit, so one more refusal suspends again.
        self._resume("logon_retry_after elapsed: one attempt")
        return True

    def _follow_password_file(self) -> None:
        """Use a new password as soon as the password file holds one, without a reload.

        The file is read as the configuration reads it; only a change of the password itself
        counts. The client is built anew with it, so nothing relies on the client reading the
        file, and the refused-logon count starts again for the new password.
        """
        path = self.server.password_file
        if path is None:
            return
        secret = _read_secret(path)
        server = None
        if secret is not None:
            try:
                server = replace(self.server, password=secret)
            except ValueError:
                server = None
        if server is None or secret is None:
            if not self._secret_unreadable:
                self._log.warning(
                    "password file unreadable or empty; keeping the current password", path=path
                )
            self._secret_unreadable = True
            return
        self._secret_unreadable = False
        digest = _digest(secret)
        if digest == self._secret_digest:
            return
        register_credentials(server.username, secret)
        old = self._client
        self.server = server
        self._client = self._client_factory(server, self._on_logon)
        self._secret_digest = digest
        self._refused = 0
        old.close(timeout=min(3.0, server.timeout))
        self._log.info("password file changed; the next logon uses the new password")
        self._resume("password file changed")

    def next_delay(self, succeeded: bool, rng: random.Random | None = None) -> float:
        interval = self.server.poll_interval
        until = self._suspended_until
        if until is not None:
            # Suspended: wake every interval to look at the password file, and on time for
            # the one retry.
            delay = max(0.0, min(interval, until - self._clock()))
        elif succeeded:
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


def _digest(secret: str) -> bytes:
    # Only a digest is compared and handed over, so no second copy of the secret lingers.
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _read_secret(path: str) -> str | None:
    """The password in ``path`` as the configuration reads it, or None if there is none."""
    try:
        return read_secret_file(path)
    except SecretFileError:
        return None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
