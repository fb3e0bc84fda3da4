"""``--em.check``: log on to every configured EM, read the sessions once, log out, report.

Each server gets one line on stdout: ``em01: ok, 2913 sessions of 12 types in 1.8s`` or
``em02: auth: <message>``, the reason and message a poll would have counted and shown. The
answer is read as a poll reads it (same parser, same snapshot), so a check that says ok means
the next poll can succeed too. Nothing is served and no poller runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TextIO

from exporter.config import Config, ServerConfig
from exporter.parse import ParseError, iter_entries
from exporter.poller import ClientFactory, em_client
from exporter.reasons import PollError
from exporter.redact import redact, register_credentials
from exporter.snapshot import FinishedLedger, PollResult, build

# How long the logout may take once the answer is read: a check never hangs on a slow EM.
LOGOUT_TIMEOUT = 3.0


def check_server(
    server: ServerConfig,
    *,
    client_factory: ClientFactory = em_client,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[bool, str]:
    """(ok, the server's report line); never raises, and the line holds no secret."""
    started = monotonic()
    client = client_factory(server, lambda: None)
    try:
        result = client.fetch_sessions(lambda stream: _read(stream, server))
    except PollError as exc:
        return False, _line(server, f"{exc.reason}: {exc}")
    except ParseError as exc:
        return False, _line(server, f"parse: {exc}")
    except Exception as exc:  # a bug must cost this server's line, never the other servers'
        return False, _line(
            server, f"parse: unexpected {type(exc).__name__} while reading the answer"
        )
    finally:
        client.close(timeout=min(LOGOUT_TIMEOUT, server.timeout))
    elapsed = monotonic() - started
    sessions = sum(result.snapshot.sessions.values())
    types = len(result.snapshot.types)
    return True, _line(
        server,
        f"ok, {sessions} session{'s' if sessions != 1 else ''} of {types} "
        f"type{'s' if types != 1 else ''} in {elapsed:.1f}s",
    )


def _read(stream: IO[bytes], server: ServerConfig) -> PollResult:
    return build(
        iter_entries(stream, server.format),
        taken_at=time.time(),
        allows=server.session_types.allows,
        # A fresh ledger, as a poller's first poll has: its baseline is kept packed.
        ledger=FinishedLedger(),
        max_types=server.max_session_types,
    )


def _line(server: ServerConfig, text: str) -> str:
    return redact(f"{server.name}: {text}")


def run(
    config: Config,
    out: TextIO | None = None,
    *,
    client_factory: ClientFactory = em_client,
) -> int:
    """Check every server (in parallel), print one line each in configuration order.

    0 when every server is ok, 1 when any failed.
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
    for _, line in results:
        print(line, file=stream, flush=True)
    return 0 if all(ok for ok, _ in results) else 1
