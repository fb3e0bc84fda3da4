"""Job-feed states -> metric families. No I/O: a scrape reads what the feeds swapped in.

Job series carry ``server``, ``backup_server``, ``job_name`` and ``job_type``; the duration
histogram carries no ``job_name``. Nothing is per session, per run or per VM::

    veeam_em_backup_job_sessions_finished_total{backup_server="vbr01",job_name="Backup Job 1",job_type="Backup",result="Failed",retry="false",server="em01"} 1.0
    veeam_em_backup_job_last_result{backup_server="vbr01",job_name="Backup Job 1",job_type="Backup",result="Success",server="em01"} 1.0
    veeam_em_job_sessions_up{server="em01"} 1.0

The job gauges describe the last successful poll and are hidden once it is older than the
feed's ``stale_after``; the counters, the histogram and the feed's health always show.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter.feed import health_families
from exporter.jobsessions.plan import QUERIES
from exporter.jobsessions.reduce import JobKey, JobSummary
from exporter.jobsessions.state import JobFeedState
from exporter.redact import generation as redaction_generation
from exporter.redact import redact
from exporter.rendercache import RenderCache
from exporter.snapshot import DURATION_BUCKETS
from exporter.vocabulary import RESULTS, UNKNOWN

PREFIX = "veeam_em_backup_job"
FEED_PREFIX = "veeam_em_job_sessions"
_AS_OF = "as of the last poll"
_JOB = ["server", "backup_server", "job_name", "job_type"]


class JobSessionCollector(Collector):
    """Renders the job metrics and the feed's health of every server whose feed is read.

    While the same states are shown (and no secret was added to the redactor), collect()
    yields the very Metric objects it yielded before, so that the telemetry path reuses their
    formatted text (exporter.rendercache): a large estate's families, some 19 series per job,
    are formatted once per poll instead of at every scrape. The families are never changed
    once yielded.
    """

    def __init__(
        self,
        states: Callable[[], Sequence[JobFeedState]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._states = states
        self._clock = clock
        self._cache = RenderCache()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        states = sorted(self._states(), key=lambda s: s.server)
        if not states:
            return
        now = self._clock()
        shown = tuple(
            (s, s.view.taken_at is not None and now - s.view.taken_at <= s.stale_after)
            for s in states
        )
        fresh = [s for s, is_fresh in shown if is_fresh]
        inputs = (redaction_generation(), *(x for pair in shown for x in pair))
        yield from self._cache.families(
            inputs, lambda: (*_gauges(fresh), *_counters(states), *_health(states, fresh))
        )


def _labels(server: str, key: JobKey) -> list[str]:
    backup_server, job_name, job_type = key
    # A label may echo back what the EM was sent: never a secret.
    return [server, redact(backup_server), redact(job_name), redact(job_type)]


def _gauge(name: str, meaning: str, *extra: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", f"{meaning}, {_AS_OF}.", labels=[*_JOB, *extra])


def _gauges(fresh: Sequence[JobFeedState]) -> Iterator[Metric]:
    last_result = _gauge(
        "last_result",
        "Result of the job's newest finished session, retries included (1 for its result)",
        "result",
    )
    last_start = _gauge("last_start_timestamp_seconds", "Creation time of the job's newest session")
    last_end = _gauge("last_end_timestamp_seconds", "End time of the job's newest finished session")
    last_duration = _gauge("last_duration_seconds", "Duration of the job's newest finished session")
    last_success = _gauge(
        "last_success_timestamp_seconds", "End time of the job's newest successful session"
    )
    last_failure = _gauge(
        "last_failure_timestamp_seconds", "End time of the job's newest failed session"
    )
    running = _gauge("running", "Sessions of the job not finished")
    oldest_running = _gauge(
        "oldest_running_start_timestamp_seconds",
        "Creation time of the job's oldest session not finished",
    )
    progress = _gauge(
        "running_progress_percent", "Progress of the job's newest session not finished"
    )
    for state in fresh:
        for key, job in sorted(state.view.jobs.items()):
            labels = _labels(state.server, key)
            _job_gauges(labels, job, last_result, last_end, last_duration)
            last_start.add_metric(labels, job.last_start)
            success = job.newest_success
            if success is not None and success.ended is not None:
                last_success.add_metric(labels, success.ended)
            failure = job.newest_failure
            if failure is not None and failure.ended is not None:
                last_failure.add_metric(labels, failure.ended)
            running.add_metric(labels, job.running)
            if job.oldest_running_start is not None:
                oldest_running.add_metric(labels, job.oldest_running_start)
            if job.running_progress is not None:
                progress.add_metric(labels, job.running_progress)
    yield last_result
    yield last_start
    yield last_end
    yield last_duration
    yield last_success
    yield last_failure
    yield running
    yield oldest_running
    yield progress


def _job_gauges(
    labels: list[str],
    job: JobSummary,
    last_result: GaugeMetricFamily,
    last_end: GaugeMetricFamily,
    last_duration: GaugeMetricFamily,
) -> None:
    newest = job.newest_finished
    if newest is None:
        return
    for result in RESULTS:
        last_result.add_metric([*labels, result], 1.0 if newest.result == result else 0.0)
    if newest.result == UNKNOWN:
        last_result.add_metric([*labels, UNKNOWN], 1.0)
    if newest.ended is not None:
        last_end.add_metric(labels, newest.ended)
        last_duration.add_metric(labels, newest.duration or 0.0)


def _counters(states: Sequence[JobFeedState]) -> Iterator[Metric]:
    finished = CounterMetricFamily(
        f"{PREFIX}_sessions_finished",
        "Backup job sessions seen to finish since the exporter started, by result and retry; "
        f"each session counted once, {_AS_OF}.",
        labels=[*_JOB, "result", "retry"],
    )
    durations = HistogramMetricFamily(
        f"{PREFIX}_session_duration_seconds",
        f"Duration of the backup job sessions counted in finished_total, {_AS_OF}.",
        labels=["server", "backup_server", "job_type"],
    )
    for state in states:
        for key, job in sorted(state.view.jobs.items()):
            labels = _labels(state.server, key)
            for (result, retry), count in sorted(job.finished.items()):
                finished.add_metric([*labels, result, "true" if retry else "false"], count)
        for (backup_server, job_type), hist in sorted(state.view.durations.items()):
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip(
                (*DURATION_BUCKETS, float("inf")), hist.bucket_counts, strict=True
            ):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            labels = [state.server, redact(backup_server), redact(job_type)]
            durations.add_metric(labels, buckets, hist.total)
    yield finished
    yield durations


def _health(states: Sequence[JobFeedState], fresh: Sequence[JobFeedState]) -> Iterator[Metric]:
    yield from health_families(
        FEED_PREFIX, "backup job sessions", [(s.server, s.health) for s in states]
    )
    truncated = CounterMetricFamily(
        f"{PREFIX}_query_truncated",
        "Job-session queries cut at max_pages (the oldest sessions left unread), by query.",
        labels=["server", "query"],
    )
    duplicates = CounterMetricFamily(
        f"{PREFIX}_duplicate_uid",
        "Job-session entries whose UID their query had already returned (the more final kept).",
        labels=["server"],
    )
    skipped = CounterMetricFamily(
        f"{PREFIX}_skipped_sessions",
        "Job-session entries that could not be read and were skipped.",
        labels=["server"],
    )
    in_window = GaugeMetricFamily(
        f"{PREFIX}_sessions_in_window",
        f"Distinct backup job sessions in the window and running queries, {_AS_OF}.",
        labels=["server"],
    )
    pages = GaugeMetricFamily(
        f"{PREFIX}_query_pages",
        f"Pages read per job-session query, {_AS_OF}.",
        labels=["server", "query"],
    )
    for state in states:
        counters = state.counters
        for query in QUERIES:
            truncated.add_metric([state.server, query], counters.truncated.get(query, 0))
        duplicates.add_metric([state.server], counters.duplicates)
        skipped.add_metric([state.server], counters.skipped)
    for state in fresh:
        in_window.add_metric([state.server], state.view.sessions)
        for query in QUERIES:
            pages.add_metric([state.server, query], state.counters.pages.get(query, 0))
    yield truncated
    yield duplicates
    yield skipped
    yield in_window
    yield pages
