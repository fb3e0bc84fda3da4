"""The exporter's own metrics: the only mutable metric objects in the process.

Poll health per server plus build info, the config reload gauges and the standard `process_*`
metrics. Series for a server exist from the moment it is added, with all six error reasons at 0.

Of prometheus-client's default collectors only the process one is registered: CPU, memory, open
file descriptors and start time are what an operator watches an exporter by (a leak, a restart
loop, descriptors running out). The platform collector's `python_info` repeats build_info's
`pythonversion`, and the GC collector's counters say nothing an operator can act on.
"""

from __future__ import annotations

from contextlib import suppress

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    disable_created_metrics,
)

from exporter import build
from exporter.reasons import REASONS


class ExporterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # `_created` series would double the counters' series for nothing a dashboard uses,
        # and carry the process start time, which no test can pin.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.up = Gauge(
            "veeam_em_up",
            "1 if the last poll of this EM succeeded (logon, fetch, parse), else 0.",
            ["server"],
            registry=registry,
        )
        self.poll_duration = Gauge(
            "veeam_em_poll_duration_seconds",
            "Wall time of the last poll of this EM.",
            ["server"],
            registry=registry,
        )
        self.last_success = Gauge(
            "veeam_em_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll of this EM.",
            ["server"],
            registry=registry,
        )
        self.polls = Counter(
            "veeam_em_polls", "Polls of this EM attempted.", ["server"], registry=registry
        )
        self.errors = Counter(
            "veeam_em_poll_errors",
            "Failed polls of this EM by reason.",
            ["server", "reason"],
            registry=registry,
        )
        self.logins = Counter(
            "veeam_em_logins",
            "Logon sessions created on this EM.",
            ["server"],
            registry=registry,
        )
        self.logon_suspended = Gauge(
            "veeam_em_logon_suspended",
            "1 while logons to this EM are suspended after refused logons, so that the account "
            "is not locked; else 0.",
            ["server"],
            registry=registry,
        )
        self.skipped = Counter(
            "veeam_em_skipped_sessions",
            "Session entries skipped: unreadable, or of a session type beyond max_session_types.",
            ["server"],
            registry=registry,
        )
        build_info = Gauge(
            "veeam_em_exporter_build_info",
            "Build information of the exporter; always 1.",
            ["version", "revision", "pythonversion"],
            registry=registry,
        )
        info = build.current()
        build_info.labels(info.version, info.revision, info.python_version).set(1)
        self.reload_ok = Gauge(
            "veeam_em_config_last_reload_successful",
            "1 if the last configuration (re)load succeeded.",
            registry=registry,
        )
        self.reload_ts = Gauge(
            "veeam_em_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.",
            registry=registry,
        )
        # Reads /proc/self at each scrape; where there is no /proc it yields nothing.
        ProcessCollector(registry=registry)

    def add_server(self, server: str) -> None:
        self.up.labels(server).set(0)
        self.poll_duration.labels(server).set(0)
        self.polls.labels(server)
        for reason in REASONS:
            self.errors.labels(server, reason)
        self.logins.labels(server)
        self.logon_suspended.labels(server).set(0)
        self.skipped.labels(server)

    def remove_server(self, server: str) -> None:
        per_server = (
            self.up,
            self.poll_duration,
            self.last_success,
            self.polls,
            self.logins,
            self.logon_suspended,
            self.skipped,
        )
        for metric in per_server:
            with suppress(KeyError):  # last_success is absent until a poll succeeds
                metric.remove(server)
        for reason in REASONS:
            with suppress(KeyError):
                self.errors.remove(server, reason)
