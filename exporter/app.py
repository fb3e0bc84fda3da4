"""The running exporter: one registry, the self-metrics, one poller per EM and the collector.

``apply`` takes a whole ``Config`` and makes the set of pollers match it, so the first
start and a reload are the same operation: added servers start polling, removed ones stop
and log out, changed ones restart and keep their counters when the name is unchanged.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from exporter.config import Config
from exporter.feed import Feed, HealthReporting
from exporter.feeds import FEEDS
from exporter.health import ExporterMetrics
from exporter.logs import get_logger
from exporter.poller import ClientFactory, Poller, em_client
from exporter.redact import register_credentials
from exporter.state import ServerState
from exporter.web import FeedInfo, ServerInfo

_log = get_logger("app")


class _NoJitter(random.Random):
    """Adds no jitter: the poller's delays at their least."""

    def uniform(self, a: float, b: float) -> float:
        return a


_NO_JITTER = _NoJitter()


class Exporter:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        client_factory: ClientFactory = em_client,
    ) -> None:
        self._monotonic = monotonic
        self._client_factory = client_factory
        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics = ExporterMetrics(self.registry)
        self._clock = clock
        self._pollers: dict[str, Poller] = {}
        self._lock = threading.Lock()
        self._started = False
        # Each feed kind renders its own metrics, from the feeds every poller holds.
        for kind in FEEDS:
            self.registry.register(kind.renderer(self._feeds_named(kind.name), clock))

    # --- what scrapes and pages read ----------------------------------------------------------

    def pollers(self) -> list[Poller]:
        with self._lock:
            return list(self._pollers.values())

    def states(self) -> list[ServerState]:
        return [p.state for p in self.pollers()]

    def _feeds_named(self, name: str) -> Callable[[], list[Feed]]:
        def feeds() -> list[Feed]:
            return [feed for p in self.pollers() if (feed := p.feed(name)) is not None]

        return feeds

    def server_infos(self) -> list[ServerInfo]:
        infos = []
        for p in self.pollers():
            status = p.status
            suspended_until = p.logon_suspended_until
            snapshot = p.state.snapshot
            next_poll_at = None
            if suspended_until is None and status.last_poll_at is not None:
                # The poller waits this long from the start of its last poll; without the
                # jitter, it is the earliest the next poll may start.
                delay = p.next_delay(status.last_error is None, rng=_NO_JITTER)
                next_poll_at = status.last_poll_at + delay
            infos.append(
                ServerInfo(
                    name=p.server.name,
                    url=p.server.url,
                    polled_once=p.polled_once(),
                    last_poll_at=status.last_poll_at,
                    last_error=status.last_error,
                    up=status.last_poll_at is not None and status.last_error is None,
                    logon_suspended_until=suspended_until,
                    poll_interval=p.server.poll_interval,
                    last_success_at=None if snapshot is None else snapshot.taken_at,
                    next_poll_at=next_poll_at,
                    feeds=tuple(_feed_info(f) for f in p.feeds if isinstance(f, HealthReporting)),
                )
            )
        return infos

    # --- lifecycle ------------------------------------------------------------------------

    def apply(self, config: Config) -> None:
        """Make the running pollers match ``config``."""
        for server in config.servers:
            register_credentials(server.username, server.password)
        with self._lock:
            current = dict(self._pollers)
        wanted = {s.name: s for s in config.servers}
        stopping = [p for name, p in current.items() if name not in wanted]
        changed = [p for name, p in current.items() if name in wanted and p.server != wanted[name]]
        _stop_all(stopping + changed)
        for poller in stopping:
            self.metrics.remove_server(poller.server.name)
        new: dict[str, Poller] = {}
        for name, server in wanted.items():
            old = current.get(name)
            if old is not None and old.server == server:
                old.config_reloaded()
                new[name] = old
                continue
            poller = Poller(
                server,
                self.metrics,
                client_factory=self._client_factory,
                succeeds=old,
                clock=self._clock,
                monotonic=self._monotonic,
            )
            new[name] = poller
            if self._started:
                poller.start()
        with self._lock:
            self._pollers = new
        self.metrics.reload_ok.set(1)
        self.metrics.reload_ts.set(self._clock())

    def reload_failed(self) -> None:
        self.metrics.reload_ok.set(0)

    def start(self) -> None:
        self._started = True
        for poller in self.pollers():
            poller.start()

    def stop(self) -> None:
        """Stop every poller and log out of every EM."""
        _stop_all(self.pollers())
        self._started = False


def _feed_info(feed: HealthReporting) -> FeedInfo:
    health = feed.health
    return FeedInfo(
        name=feed.name,
        up=health.up,
        polled_once=health.last_success is not None or any(health.errors.values()),
        poll_interval=feed.interval,
        last_success_at=health.last_success,
        last_error=health.last_error,
        summary=feed.summary(),
    )


def _stop_all(pollers: list[Poller]) -> None:
    """Stop pollers and log out, in parallel: each stop is bounded, so a slow EM costs its
    bound once, not once per server."""
    threads = [threading.Thread(target=p.stop, name=f"stop-{p.server.name}") for p in pollers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5.0)
