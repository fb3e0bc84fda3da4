"""What each kind of EM system job looks like: schedule, duration, outcomes, log lines.

Only `Collect Job` and `Catalog Replication Job` names, the CollectJob log lines and the
SessionType values are documented by Veeam; the other display names, schedules, durations,
rates and messages are plausible inventions, kept here in one table so they are easy to tune.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

STOPPED_BY = "CORP\\veeam.admin"
CANCELED_MESSAGE = f"Job has been stopped by user {STOPPED_BY}."

Starts = Callable[[random.Random, datetime, float], list[datetime]]


@dataclass(frozen=True)
class JobKind:
    session_type: str
    display: str
    per_server: bool  # one schedule per backup server, messages name the server
    starts: Starts  # (rng, UTC midnight of the day, per-server phase in seconds) -> starts
    median_seconds: float
    spread: float  # sigma of the log-normal duration
    min_seconds: float
    max_seconds: float
    p_warning: float
    p_failure: float
    p_canceled: float
    warnings: tuple[str, ...]
    failures: tuple[str, ...]
    progress: tuple[str, ...]  # log lines between "started" and the outcome
    start_line: str = ""  # empty: "Starting <display>..."
    success_line: str = ""  # empty: "<display> completed successfully."
    finish_line: str = ""  # empty: "<display> finished."

    def duration(self, rng: random.Random) -> float:
        seconds = rng.lognormvariate(math.log(self.median_seconds), self.spread)
        return min(max(seconds, self.min_seconds), self.max_seconds)


def _every(minutes: int, jitter: float) -> Starts:
    def starts(rng: random.Random, day: datetime, phase: float) -> list[datetime]:
        return [
            day + timedelta(seconds=slot * minutes * 60 + phase + rng.uniform(0, jitter))
            for slot in range(24 * 60 // minutes)
        ]

    return starts


def _hourly_ish(rng: random.Random, day: datetime, phase: float) -> list[datetime]:
    # Runs hourly but skips now and then when the previous run's data is still fresh.
    out = []
    for hour in range(24):
        if rng.random() < 0.1:
            continue
        out.append(day + timedelta(hours=hour, minutes=5, seconds=phase + rng.uniform(0, 90)))
    return out


def _at_hours(*hours: float, jitter_minutes: float = 20) -> Starts:
    def starts(rng: random.Random, day: datetime, phase: float) -> list[datetime]:
        return [
            day + timedelta(hours=h, seconds=phase + rng.uniform(0, jitter_minutes * 60))
            for h in hours
        ]

    return starts


def _sometimes(probability: float, first_hour: int, last_hour: int) -> Starts:
    def starts(rng: random.Random, day: datetime, phase: float) -> list[datetime]:
        if rng.random() >= probability:
            return []
        return [day + timedelta(seconds=rng.uniform(first_hour * 3600, last_hour * 3600))]

    return starts


KINDS: tuple[JobKind, ...] = (
    JobKind(
        session_type="CollectJob",
        display="Collect Job",
        per_server=True,
        starts=_every(15, jitter=2.5),
        median_seconds=22,
        spread=0.45,
        min_seconds=8,
        max_seconds=420,
        p_warning=0.03,
        p_failure=0.015,
        p_canceled=0.008,
        warnings=(
            "Data collection from {host} completed with warnings: 3 job sessions could not be "
            "processed and will be collected again during the next run.",
            "Data collection from {host} completed with warnings: the backup server clock differs "
            "from the Enterprise Manager clock by more than 5 minutes.",
        ),
        failures=(
            "Failed to collect data from backup server {host}: The RPC server is unavailable.",
            "Failed to collect data from backup server {host}: The operation has timed out.",
            "Failed to collect data from backup server {host}: Access is denied.",
            "Failed to collect data from backup server {host}: Connection to the Veeam Backup "
            "Service was lost.",
        ),
        progress=(
            "Checking deleted backup servers removal",
            "Preparing to collect data from {host}",
            "Retrieving data from {host}...",
        ),
        start_line="Starting data collection job...",
        success_line="Data collection from {host} completed successfully.",
        finish_line="Data collection job finished.",
    ),
    JobKind(
        session_type="CatalogReplicationJob",
        display="Catalog Replication Job",
        per_server=True,
        starts=_at_hours(1, 9, 17),
        median_seconds=15,
        spread=0.5,
        min_seconds=4,
        max_seconds=240,
        p_warning=0.04,
        p_failure=0.02,
        p_canceled=0.01,
        warnings=(
            "Catalog replication from {host} completed with warnings: 2 restore points were "
            "skipped because their index data is missing.",
        ),
        failures=(
            "Failed to replicate catalog from {host}: The network path was not found.",
            "Failed to replicate catalog from {host}: Veeam Guest Catalog Service is not "
            "responding.",
        ),
        progress=("Replicating guest catalog from {host}...",),
    ),
    JobKind(
        session_type="CatalogCrawlJob",
        display="Catalog Crawl Job",
        per_server=False,
        starts=_at_hours(0.5, 6.5, 12.5, 18.5, jitter_minutes=10),
        median_seconds=90,
        spread=0.8,
        min_seconds=10,
        max_seconds=1800,
        p_warning=0.05,
        p_failure=0.02,
        p_canceled=0.01,
        warnings=(
            "Catalog crawl completed with warnings: 1 guest file system index could not be read.",
        ),
        failures=("Catalog crawl failed: There is not enough space on the disk (C:\\VBRCatalog).",),
        progress=("Crawling the guest catalog...",),
    ),
    JobKind(
        session_type="DatabaseMaintenance",
        display="Database Maintenance",
        per_server=False,
        starts=_at_hours(3, jitter_minutes=2),
        median_seconds=360,
        spread=0.5,
        min_seconds=60,
        max_seconds=3600,
        p_warning=0.08,
        p_failure=0.03,
        p_canceled=0.01,
        warnings=(
            "Database maintenance completed with warnings: index fragmentation remains above 30% "
            "on 2 tables.",
        ),
        failures=(
            "Database maintenance failed: Execution Timeout Expired. The timeout period elapsed "
            "prior to completion of the operation or the server is not responding.",
        ),
        progress=("Rebuilding fragmented indexes...", "Updating statistics..."),
    ),
    JobKind(
        session_type="HistoryCollectJob",
        display="History Collect Job",
        per_server=False,
        starts=_hourly_ish,
        median_seconds=12,
        spread=0.5,
        min_seconds=3,
        max_seconds=180,
        p_warning=0.02,
        p_failure=0.01,
        p_canceled=0.005,
        warnings=("Session history collected with warnings: 4 records were skipped.",),
        failures=(
            "Failed to collect session history: Transaction was deadlocked on lock resources "
            "with another process and has been chosen as the deadlock victim.",
        ),
        progress=("Collecting session history...",),
    ),
    JobKind(
        session_type="LicAutoUpdate",
        display="License Auto Update",
        per_server=False,
        starts=_at_hours(4, jitter_minutes=30),
        median_seconds=5,
        spread=0.4,
        min_seconds=1,
        max_seconds=60,
        p_warning=0.03,
        p_failure=0.03,
        p_canceled=0.0,
        warnings=("License auto update completed with warnings: the license expires in 14 days.",),
        failures=("License auto update failed: Unable to connect to the Veeam licensing server.",),
        progress=("Checking for a new license...",),
    ),
    JobKind(
        session_type="SyncCheckForProductUpdatesOption",
        display="Check For Product Updates",
        per_server=False,
        starts=_at_hours(5, jitter_minutes=30),
        median_seconds=3,
        spread=0.4,
        min_seconds=1,
        max_seconds=30,
        p_warning=0.0,
        p_failure=0.04,
        p_canceled=0.0,
        warnings=(),
        failures=(
            "Failed to check for product updates: The remote name could not be resolved: "
            "'download2.veeam.com'.",
        ),
        progress=("Checking for product updates...",),
    ),
    JobKind(
        session_type="SecurityScopesRebuild",
        display="Security Scopes Rebuild",
        per_server=False,
        starts=_sometimes(0.15, 1, 23),
        median_seconds=40,
        spread=0.6,
        min_seconds=5,
        max_seconds=600,
        p_warning=0.03,
        p_failure=0.03,
        p_canceled=0.0,
        warnings=("Security scopes rebuilt with warnings: 1 scope refers to a deleted object.",),
        failures=(
            "Failed to rebuild security scopes: Object reference not set to an instance "
            "of an object.",
        ),
        progress=("Rebuilding security scopes...",),
    ),
    JobKind(
        session_type="CatalogConsolidation",
        display="Catalog Consolidation",
        per_server=False,
        starts=_sometimes(1 / 7, 20, 23),
        median_seconds=240,
        spread=0.6,
        min_seconds=30,
        max_seconds=3600,
        p_warning=0.1,
        p_failure=0.05,
        p_canceled=0.02,
        warnings=(
            "Catalog consolidation completed with warnings: 1 catalog folder is in use and was "
            "skipped.",
        ),
        failures=(
            "Catalog consolidation failed: Access to the path 'C:\\VBRCatalog\\Index' is denied.",
        ),
        progress=("Consolidating catalog folders...",),
    ),
)

KINDS_BY_TYPE = {kind.session_type: kind for kind in KINDS}


def display_name(session_type: str) -> str:
    kind = KINDS_BY_TYPE.get(session_type)
    return kind.display if kind else session_type
