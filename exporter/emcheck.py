"""``--em.check``: log on to every configured EM, read each of its feeds once, log out, report.

Each server gets one line on stdout for its system sessions, ``em01: ok, 2913 sessions of 12
types in 1.8s`` or ``em02: auth: <message>``, the reason and message a poll would have counted
and shown, then one line for each other feed it reads (``em01 job_sessions: ok, 412 sessions
of 37 jobs in 0.9s``). Each feed is read by the poll a running exporter would make first (same
requests, same parser, same reducer), so a check that says ok means that poll can succeed too.
Nothing is served and no poller runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from prometheus_client import CollectorRegistry

from exporter.config import Config, ServerConfig
from exporter.feed import Feed, FeedContext
from exporter.feeds import FEEDS
from exporter.health import ExporterMetrics
from exporter.parse import ParseError
from exporter.poller import ClientFactory, em_client
from exporter.reasons import PollError
from exporter.redact import redact, register_credentials

# How long the logout may take once the answers are read: a check never hangs on a slow EM.
LOGOUT_TIMEOUT = 3.0
# A failed system-session check with one of these reasons ends the server's check: the EM was
# not reached with a logon, so the other feeds would fail the same way (and a refused logon
# would cost the account one more).
_UNREACHED = frozenset({"connection", "timeout", "tls", "auth"})


def check_server(
    server: ServerConfig,
    *,
    client_factory: ClientFactory = em_client,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[bool, list[str]]:
    """(ok, the server's report lines); never raises, and no line holds a secret."""
    # The feeds count their polls as a poller's do; here nobody reads the counts.
    metrics = ExporterMetrics(CollectorRegistry())
    client = client_factory(server, lambda: None)
    lines: list[str] = []
    ok = True
    try:
        for kind in FEEDS:
            feed = kind.create(FeedContext(server=server, source=client, metrics=metrics))
            if feed is None:
                continue
            label = server.name if not lines else f"{server.name} {feed.name}"
            reason, text = _check_feed(feed, client, monotonic)
            lines.append(_line(label, text))
            if reason is not None:
                ok = False
                if len(lines) == 1 and reason in _UNREACHED:
                    break
    finally:
        client.close(timeout=min(LOGOUT_TIMEOUT, server.timeout))
    return ok, lines


def _check_feed(
    feed: Feed, client: object, monotonic: Callable[[], float]
) -> tuple[str | None, str]:
    """(the failure's reason or None, what to say) for one poll of the feed, as a poller
    would make it."""
    started = monotonic()
    try:
        commit = feed.poll(client, time.time())
        commit(monotonic() - started)
    except PollError as exc:
        return exc.reason, f"{exc.reason}: {exc}"
    except ParseError as exc:
        return "parse", f"parse: {exc}"
    except Exception as exc:  # a bug must cost this line, never the other servers' or feeds'
        return "parse", f"parse: unexpected {type(exc).__name__} while reading the answer"
    return None, f"ok, {feed.summary()} in {monotonic() - started:.1f}s"


def _line(label: str, text: str) -> str:
    return redact(f"{label}: {text}")


def run(
    config: Config,
    out: TextIO | None = None,
    *,
    client_factory: ClientFactory = em_client,
) -> int:
    """Check every server (in parallel), print its lines in configuration order.

    0 when every feed of every server is ok, 1 when any failed.
    """
    servers: Sequence[ServerConfig] = config.servers
    for server in servers:
        register_credentials(server.username, server.password)
    # One thread per server: each check is bounded by its own server's timeouts, so the
    # whole check takes as long as the slowest server, not the sum of them.
    with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="em-check") as pool:
        results = list(
            pool.map(lambda server: check_server(server, client_factory=client_factory), servers)
        )
    stream = out if out is not None else sys.stdout
    for _, lines in results:
        for line in lines:
            print(line, file=stream, flush=True)
    return 0 if all(ok for ok, _ in results) else 1
