"""One poller per EM server: its client, its logon guard, and one thread per feed.

The feeds (exporter.feed; listed in exporter.feeds) are the resources read from the server:
the system sessions first, whose outcome is the server's poll health, then any other (the
backup job sessions). Each runs on its own schedule in its own thread, with the server's one
client and logon session. A poll is logon-if-needed, fetch, stream-parse and reduce; only a
poll that completes is committed. A failed poll leaves the previous state in place (the
collector hides it once it is older than ``stale_after``), is counted by its feed alone, and is
retried with a doubling backoff capped at the feed's interval. Nothing here blocks a scrape,
another feed or another server.

A wrong password must never lock the EM account: after ``max_logon_failures`` logons in a
row that the EM refused, the poller stops logging on to that server. The suspension ends when
the password file's content changes (looked at every poll), when the configuration is
reloaded, or after ``logon_retry_after`` for a single attempt, which suspends again if refused.
Logons belong to the server, not to a feed: a logon any feed's poll saw refused counts, and no
feed polls while logons are suspended. The other feeds' threads also wait for the server's
logon to be accepted (at start-up, and again after a refusal): trying logons is left to the
system sessions' thread, so a wrong password costs no more refused logons than before.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from exporter.config import ServerConfig
from exporter.emclient import EMClient
from exporter.feed import Feed, FeedContext, FeedKind
from exporter.feeds import FEEDS
from exporter.health import ExporterMetrics
from exporter.logs import Logger, get_logger
from exporter.parse import ParseError
from exporter.reasons import LogonRefused, PollError
from exporter.redact import register_credentials
from exporter.secretfile import SecretFileError, read_secret_file
from exporter.state import ServerState
from exporter.systemfeed import PollStatus as PollStatus
from exporter.systemfeed import SessionSource as SessionSource
from exporter.systemfeed import SystemSessionsFeed

BACKOFF_START = 5.0  # seconds before the first retry; doubles up to the poll interval
JITTER = 0.05  # up to 5% of each delay, so that several exporters do not poll in lockstep


ClientFactory = Callable[[ServerConfig, Callable[[], None]], SessionSource]


def em_client(server: ServerConfig, on_logon: Callable[[], None]) -> SessionSource:
    return EMClient(server, on_logon=on_logon)


def backoff_delay(interval: float, failures: int, succeeded: bool) -> float:
    """The wait before a feed's next poll: its interval, or after failures a doubling backoff
    from BACKOFF_START capped at the interval."""
    if succeeded or failures <= 0:
        return interval
    return min(interval, min(BACKOFF_START, interval) * 2.0 ** (failures - 1))


@dataclass(frozen=True)
class Handover:
    """What a stopped poller passes to the one that replaces it after a reload.

    The feeds are handed over, not copied: each successor feed goes on counting in its
    predecessor's ledger, so no finished session is counted twice and no counter goes back to 0.
    """

    feeds: Mapping[str, Feed]
    failures: int  # consecutive failed polls of the system sessions, which set the backoff
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
        feeds: Sequence[FeedKind] = FEEDS,
    ) -> None:
        """``succeeds`` is the poller this one replaces after a reload changed the server's
        settings: its counters, last snapshot and health carry over, so a reload neither
        resets counters nor shows the server as down until the next poll ends.

        ``feeds`` are the resources read, the system sessions first (always read); a kind
        whose ``create`` declines for this server is not read."""
        self.server = server
        self._metrics = metrics
        self._client_factory = client_factory
        self._client = client_factory(server, self._on_logon)
        self._clock = clock
        self._monotonic = monotonic
        self._log = get_logger("poller", server=server.name)
        self._stop = threading.Event()
        self._polled = threading.Event()
        self._threads: list[threading.Thread] = []
        # Logon suspension: the suspension itself is also ended from the reload's thread, and
        # every feed's thread judges the logons of its polls.
        self._guard = threading.Lock()
        self._suspended_until: float | None = None
        self._refused = 0
        # Per thread: whether a logon was accepted during that thread's current poll.
        self._poll_logon = threading.local()
        # Set while the last logon was accepted: the other feeds' threads poll only then.
        self._logon_good = threading.Event()
        self._secret_digest = _digest(server.password)
        self._secret_unreadable = False
        handover = None if succeeds is None else succeeds.handover()
        if handover is None:
            self._failures = 0
            metrics.add_server(server.name)
        else:
            self._failures = handover.failures
            if handover.polled_once:
                self._polled.set()
            if handover.secret_digest == self._secret_digest:
                self._refused = handover.refused_logons
            metrics.logon_suspended.labels(server.name).set(0)
            if handover.suspended_until is not None:
                self._log.info("logons resumed", why="configuration reloaded")
        created: dict[str, Feed] = {}
        for kind in feeds:
            previous = None if handover is None else handover.feeds.get(kind.name)
            feed = kind.create(FeedContext(server, self._client, metrics, previous))
            if feed is not None:
                created[feed.name] = feed
        self._feeds: Mapping[str, Feed] = created
        system = next(iter(created.values()), None)
        if not isinstance(system, SystemSessionsFeed):
            raise ValueError("the system sessions must be the first feed")
        self._system = system
        self._feed_logs = {
            name: get_logger("poller", server=server.name, feed=name)
            for name in created
            if name != system.name
        }

    # --- read side (any thread) -----------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self._system.state

    @property
    def status(self) -> PollStatus:
        return self._system.status

    def feed(self, name: str) -> Feed | None:
        """This server's feed of that name, if it is read."""
        return self._feeds.get(name)

    @property
    def feeds(self) -> Sequence[Feed]:
        return tuple(self._feeds.values())

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
            feeds=self._feeds,
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
        self._poll_logon.accepted = True
        self._logon_good.set()
        self._metrics.logins.labels(self.server.name).inc()
        self._log.info("logged on to the EM")

    def poll_once(self) -> bool:
        """Poll the system sessions once; True when a new snapshot was swapped in. Never
        raises.

        While logons are suspended it attempts nothing (no poll is counted) and returns False.
        """
        self._follow_password_file()
        if not self._may_log_on():
            return False
        self._failures = self._run_poll(self._system, self._log, self._failures)
        self._polled.set()
        return self._failures == 0

    def poll_feed(self, name: str, failures: int = 0) -> int | None:
        """Poll one feed other than the system sessions once, in the calling thread.

        Returns the consecutive failures after this poll (0 after a success, ``failures + 1``
        after a failure), or None when nothing was attempted: logons are suspended (only the
        system sessions' thread makes the one attempt that may end a suspension). Never raises.
        """
        with self._guard:
            if self._suspended_until is not None:
                return None
        return self._run_poll(self._feeds[name], self._feed_logs[name], failures)

    def _run_poll(self, feed: Feed, log: Logger, failures: int) -> int:
        self._poll_logon.accepted = False
        started = self._monotonic()
        # One reading of the clock dates the state, the success gauge and staleness alike.
        now = self._clock()
        error: str | None = None
        reason = ""
        refused = False
        try:
            commit = feed.poll(self._client, now)
        except PollError as exc:
            reason, error = exc.reason, str(exc)
            refused = isinstance(exc, LogonRefused)
        except ParseError as exc:
            reason, error = "parse", str(exc)
        except Exception as exc:  # a bug must cost one poll, never the polling thread
            reason, error = "parse", f"unexpected {type(exc).__name__} while reading the answer"
            log.error("unexpected error in poll", err=f"{type(exc).__name__}: {exc}")
        duration = self._monotonic() - started
        if error is None:
            commit(duration)
            if failures:
                log.info("poll succeeded again", after_failures=failures)
            failures = 0
        else:
            failures += 1
            feed.failed(reason, error, now, duration)
            log.warning("poll failed", reason=reason, err=error, failures=failures)
        self._judge_logon(succeeded=error is None, refused=refused, now=now)
        return failures

    # --- never locking the EM account -----------------------------------------------------

    def _judge_logon(self, *, succeeded: bool, refused: bool, now: float) -> None:
        """Count refused logons; suspend logons once there were max_logon_failures in a row.

        Only a logon the EM refused counts (:class:`LogonRefused`). Reason ``auth`` also
        covers a token refused after an accepted logon, a resource the account's role may not
        read (403 to a job query while the system sessions are read with the same token), and
        a password file that could not be read (no logon sent): none of them says the password
        is wrong, and counting them would let one feed stop every feed of the server. Other
        failures (connection, TLS, timeout, 5xx) neither count nor reset; a success or a logon
        accepted during the poll resets the count.
        """
        accepted = getattr(self._poll_logon, "accepted", False)
        with self._guard:
            if accepted or succeeded:
                self._refused = 0
                return
            if not refused:
                return
            self._refused += 1
            self._logon_good.clear()
            limit = self.server.max_logon_failures
            if not (limit and self._refused >= limit) or self._suspended_until is not None:
                return
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
        """The wait before the next poll of the system sessions."""
        interval = self.server.poll_interval
        until = self._suspended_until
        if until is not None:
            # Suspended: wake every interval to look at the password file, and on time for
            # the one retry.
            delay = max(0.0, min(interval, until - self._clock()))
        else:
            delay = backoff_delay(interval, self._failures, succeeded)
        return delay + (rng or random).uniform(0, JITTER * delay)

    # --- the threads ------------------------------------------------------------------------

    def start(self) -> None:
        if self.server.tls.insecure_skip_verify:
            self._log.warning("TLS certificate verification is disabled for this EM")
        name = self.server.name
        self._threads = [threading.Thread(target=self._run, name=f"poller-{name}", daemon=True)]
        for feed in self._feeds.values():
            if feed is not self._system:
                self._threads.append(
                    threading.Thread(
                        target=self._run_feed,
                        args=(feed,),
                        name=f"poller-{name}-{feed.name}",
                        daemon=True,
                    )
                )
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            ok = self.poll_once()
            # Waiting on the stop event lets stop() cut the wait short.
            self._stop.wait(max(0.0, started + self.next_delay(ok) - time.monotonic()))

    def _run_feed(self, feed: Feed) -> None:
        failures = 0
        while not self._stop.is_set():
            if not self._logon_good.is_set():
                self._logon_good.wait()  # stop() sets it too
                continue
            started = time.monotonic()
            after = self.poll_feed(feed.name, failures)
            if after is None:  # suspended: look again after an interval
                delay = feed.interval
            else:
                failures = after
                delay = backoff_delay(feed.interval, failures, failures == 0)
            delay += random.uniform(0, JITTER * delay)
            self._stop.wait(max(0.0, started + delay - time.monotonic()))

    def stop(self, timeout: float = 2.0) -> None:
        """Stop polling and log out; bounded, so shutdown never hangs on a slow EM."""
        self._stop.set()
        self._logon_good.set()  # releases a feed thread waiting for a logon
        ends = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, ends - time.monotonic()))
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
