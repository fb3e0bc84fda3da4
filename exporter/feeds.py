"""The resources the exporter reads from every EM, in the order the poller creates them.

The system sessions come first: they are the server's primary feed (its ``veeam_em_up``). A
new resource is one more kind here (see exporter.feed); nothing else in the pipeline changes.
"""

from __future__ import annotations

from exporter.feed import FeedKind
from exporter.jobsessions.feed import JOB_SESSIONS
from exporter.systemfeed import SYSTEM_SESSIONS

FEEDS: tuple[FeedKind, ...] = (SYSTEM_SESSIONS, JOB_SESSIONS)
