"""The requests of a job-session poll: which queries, their filters, their pages. Pure.

A poll reads two queries of the EM's query service, page by page, sorted newest first:

- the **window**: every session created since ``now - window`` (``bootstrap_window`` for the
  first poll), finished or not;
- the **running** sessions, however old (a copy job that started before the window).

A session that was running at the previous poll and is in neither answer finished after it
left the window: it is looked up by its id (``/api/backupSessions/{guid}``).

Newest first, not oldest first: when ``max_pages`` cuts a query, what is lost is the oldest
sessions, which earlier polls have already seen, never the ones that just finished. A session
the EM adds while the pages are read moves the later pages by one, which shows an entry twice
(deduplicated by UID), never hides one.
"""

from __future__ import annotations

import enum
import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import Final

QUERY_TYPE: Final = "BackupJobSession"
WINDOW: Final = "window"
RUNNING: Final = "running"
QUERIES: Final = (WINDOW, RUNNING)
# Not every EM is known to take != on an enumeration; on a 400 the poll asks for the states
# that mean "not finished" one by one (`,` is OR).
RUNNING_FILTER: Final = "State!=Stopped"
RUNNING_FALLBACK: Final = (
    "State==Working,State==Starting,State==Stopping,State==Pausing,State==Resuming"
)
# At most this many vanished sessions are looked up per poll; the others wait for the next.
MAX_LOOKUPS: Final = 20
# A lookup that keeps failing (other than 404) is given up after this many polls.
MAX_LOOKUP_ATTEMPTS: Final = 3

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def em_time(timestamp: float) -> str:
    """A filter's time value: UTC, whole seconds, ``Z`` (the only form known to work)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(timestamp)))


def window_filter(start: float) -> str:
    return f'CreationTime>="{em_time(start)}"'


@dataclass(frozen=True)
class Query:
    """One query of the poll: its name (a label value) and its filter, before encoding."""

    name: str
    filter: str

    def path(self, page: int, page_size: int) -> str:
        """``/api/query?...`` for one page, every value percent-encoded."""
        params = (
            ("type", QUERY_TYPE),
            ("format", "Entities"),
            ("filter", self.filter),
            ("sortDesc", "CreationTime"),
            ("pageSize", str(page_size)),
            ("page", str(page)),
        )
        return "/api/query?" + "&".join(
            f"{name}={urllib.parse.quote(value, safe='')}" for name, value in params
        )


def window_query(now: float, window: float) -> Query:
    return Query(WINDOW, window_filter(now - window))


def running_query(fallback: bool = False) -> Query:
    return Query(RUNNING, RUNNING_FALLBACK if fallback else RUNNING_FILTER)


@dataclass(frozen=True)
class Paging:
    """What an answer's PagingInfo says; any of it may be missing."""

    page_num: int | None = None
    page_size: int | None = None
    pages_count: int | None = None


class Stop(enum.Enum):
    DONE = "done"
    TRUNCATED = "truncated"  # more pages than max_pages


def next_page(page: int, entries: int, paging: Paging | None, max_pages: int) -> int | Stop:
    """After reading ``page`` (holding ``entries`` entries): the page to read next, or Stop.

    An empty page ends the query; so do a missing PagingInfo or PagesCount (one page) and a
    PagesCount reached. A query with pages beyond ``max_pages`` is cut there: TRUNCATED.
    """
    count = None if paging is None else paging.pages_count
    if entries == 0 or count is None or page >= count:
        return Stop.DONE
    if page >= max_pages:
        return Stop.TRUNCATED
    return page + 1


def session_guid(uid: str) -> str | None:
    """The bare GUID of ``urn:veeam:BackupJobSession:<guid>`` (lower case), or None if the UID
    holds none: only a GUID ever goes into a lookup's path."""
    tail = uid.rpartition(":")[2].strip().lower()
    return tail if _GUID.fullmatch(tail) else None


def lookup_path(guid: str) -> str:
    return f"/api/backupSessions/{urllib.parse.quote(guid, safe='')}?format=Entity"
