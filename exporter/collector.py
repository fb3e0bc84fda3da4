"""Snapshots -> metric families. No I/O: a scrape only reads what the pollers swapped in.

The poll-health self-metrics (``veeam_em_up``, ``veeam_em_polls_total``, ...) are ordinary
prometheus-client objects owned by the pollers; this collector renders the session metrics::

    # HELP veeam_em_system_sessions System sessions in the EM's 30-day window by type and state, as of the last poll.
    # TYPE veeam_em_system_sessions gauge
    veeam_em_system_sessions{server="em01",session_type="CollectJob",state="CompletedSuccessfully"} 2871.0
    veeam_em_system_sessions{server="em01",session_type="CollectJob",state="Failed"} 12.0
    ...
    # TYPE veeam_em_system_sessions_finished_total counter
    veeam_em_system_sessions_finished_total{result="Failed",server="em01",session_type="CollectJob"} 1.0
    # TYPE veeam_em_system_session_duration_seconds histogram
    veeam_em_system_session_duration_seconds_bucket{le="30.0",server="em01",session_type="CollectJob"} 4.0
    ...
    veeam_em_system_session_last_failure_info{message="The RPC server is unavailable.",server="em01",session_type="CollectJob"} 1.0
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

from exporter.redact import generation as redaction_generation
from exporter.redact import redact
from exporter.rendercache import RenderCache
from exporter.snapshot import DURATION_BUCKETS, LedgerView, ServerSnapshot, clean_message
from exporter.state import ServerState
from exporter.vocabulary import RESULTS, UNKNOWN

_AS_OF = "as of the last poll"


class SessionCollector(Collector):
    """Renders every session metric from the current states: the gauges from each snapshot
    not older than its server's ``stale_after``, the counters and histogram from every
    server's ledger whatever its age.

    Snapshots and ledger views are immutable and swapped whole, so while the same ones are
    shown (and no secret was added to the redactor) the families are the same: collect()
    then yields the very Metric objects it yielded before, which the telemetry path uses to
    reuse their formatted text (exporter.rendercache). The families are never changed once
    yielded.
    """

    def __init__(
        self,
        states: Callable[[], Sequence[ServerState]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._states = states
        self._clock = clock
        self._cache = RenderCache()

    def describe(self) -> list[Metric]:
        # An empty description keeps the registry from calling collect() at registration.
        return []

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        states = sorted(self._states(), key=lambda s: s.server)
        shown = tuple(
            (
                s.server,
                s.snapshot
                if s.snapshot is not None and now - s.snapshot.taken_at <= s.stale_after
                else None,
                s.ledger,
            )
            for s in states
        )
        fresh = [(server, snap) for server, snap, _ in shown if snap is not None]
        inputs = (redaction_generation(), *(x for item in shown for x in item))
        yield from self._cache.families(
            inputs,
            lambda: (*_gauges(fresh), *_counters([(server, v) for server, _, v in shown])),
        )


def _gauge(name: str, meaning: str, *extra_labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"veeam_em_system_{name}",
        f"{meaning}, {_AS_OF}.",
        labels=["server", "session_type", *extra_labels],
    )


def _gauges(fresh: Sequence[tuple[str, ServerSnapshot]]) -> Iterator[Metric]:
    sessions = _gauge(
        "sessions", "System sessions in the EM's 30-day window by type and state", "state"
    )
    canceled = _gauge(
        "sessions_canceled", "System sessions in the EM's 30-day window that were canceled"
    )
    last_start = _gauge(
        "session_last_start_timestamp_seconds", "Creation time of the newest session of the type"
    )
    last_end = _gauge(
        "session_last_end_timestamp_seconds",
        "End time of the newest finished session of the type",
    )
    last_duration = _gauge(
        "session_last_duration_seconds", "Duration of the newest finished session of the type"
    )
    last_result = _gauge(
        "session_last_result",
        "Result of the newest finished session of the type (1 for its result)",
        "result",
    )
    last_success = _gauge(
        "session_last_success_timestamp_seconds",
        "End time of the newest successful session of the type",
    )
    last_failure = _gauge(
        "session_last_failure_timestamp_seconds",
        "End time of the newest failed session of the type",
    )
    failure_info = _gauge(
        "session_last_failure_info",
        "Message of the newest failed session of the type (always 1)",
        "message",
    )
    oldest_running = _gauge(
        "session_oldest_running_start_timestamp_seconds",
        "Creation time of the oldest running session of the type",
    )

    for server, snap in fresh:
        for (session_type, state), count in sorted(snap.sessions.items()):
            sessions.add_metric([server, session_type, state], count)
        for session_type, summary in sorted(snap.types.items()):
            labels = [server, session_type]
            canceled.add_metric(labels, snap.canceled.get(session_type, 0))
            last_start.add_metric(labels, summary.last_start)
            newest = summary.newest_finished
            if newest is not None:
                if newest.ended is not None:
                    last_end.add_metric(labels, newest.ended)
                    last_duration.add_metric(labels, newest.duration or 0.0)
                for result in RESULTS:
                    last_result.add_metric([*labels, result], 1.0 if newest.result == result else 0)
                if newest.result == UNKNOWN:
                    last_result.add_metric([*labels, UNKNOWN], 1.0)
            success = summary.newest_success
            if success is not None and success.ended is not None:
                last_success.add_metric(labels, success.ended)
            failure = summary.newest_failure
            if failure is not None:
                if failure.ended is not None:
                    last_failure.add_metric(labels, failure.ended)
                # A failure message may echo the token or the credentials back.
                failure_info.add_metric([*labels, clean_message(redact(failure.message))], 1.0)
            if summary.oldest_running_start is not None:
                oldest_running.add_metric(labels, summary.oldest_running_start)

    yield sessions
    yield canceled
    yield last_start
    yield last_end
    yield last_duration
    yield last_result
    yield last_success
    yield last_failure
    yield failure_info
    yield oldest_running


def _counters(ledgers: Sequence[tuple[str, LedgerView]]) -> Iterator[Metric]:
    finished = CounterMetricFamily(
        "veeam_em_system_sessions_finished",
        "System sessions seen to finish since the exporter started, by result; "
        f"each session counted once, {_AS_OF}.",
        labels=["server", "session_type", "result"],
    )
    durations = HistogramMetricFamily(
        "veeam_em_system_session_duration_seconds",
        f"Duration of the system sessions counted in finished_total, {_AS_OF}.",
        labels=["server", "session_type"],
    )
    for server, ledger in ledgers:
        for (session_type, result), count in sorted(ledger.finished.items()):
            finished.add_metric([server, session_type, result], count)
        for session_type, hist in sorted(ledger.durations.items()):
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip(
                (*DURATION_BUCKETS, float("inf")), hist.bucket_counts, strict=True
            ):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            durations.add_metric([server, session_type], buckets, hist.total)
    yield finished
    yield durations


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
