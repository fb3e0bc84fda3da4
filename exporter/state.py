"""The state a poller hands to the collector, one per server.

The poller builds a new ``ServerState`` after every successful poll and swaps it in whole;
the collector only reads them. It lives here so that neither of the two imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.snapshot import EMPTY_LEDGER_VIEW, LedgerView, ServerSnapshot


@dataclass(frozen=True)
class ServerState:
    """What a scrape may know about one server: swapped whole by its poller."""

    server: str
    stale_after: float
    snapshot: ServerSnapshot | None = None
    ledger: LedgerView = EMPTY_LEDGER_VIEW
