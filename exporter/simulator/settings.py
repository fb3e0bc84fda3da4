"""Settings of the simulated Enterprise Manager and their validation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from exporter.simulator.estate import MAX_JOBS
from exporter.simulator.extras import MAX_EXTRA_SESSION_TYPES

WINDOW_DAYS = 30

# Knobs that only make sense before the history is generated or the socket is bound.
STARTUP_ONLY = frozenset(
    {"seed", "backup_servers", "history_days", "tls", "host", "port", "jobs", "job_runs_per_day"}
)


@dataclass
class SimulatorSettings:
    seed: int = 1
    backup_servers: int = 2
    history_days: float = 30.0
    live: bool = True
    speed: float = 1.0
    username: str = "CORP\\svc_monitoring"
    password: str = "demo"  # noqa: S105 - the simulator's documented demo credential
    json_casing: Literal["pascal", "camel"] = "pascal"
    bom: bool = False
    result_vocabulary: Literal["state", "short"] = "state"
    fraction_digits: int = 6
    references_for_plain_path: bool = False
    token_idle_expiry: float = 900.0
    latency: float = 0.0
    tls: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    hostname_in_hrefs: str | None = None
    extra_session_types: int = 0
    # Seconds of shown time: when at least this long has passed since the last forced
    # failure, the next generated session to finish fails (0: only the schedule's own).
    fail_every: float = 0.0
    # Backup job sessions. None: the demo estate; 0: no jobs; N: a generated estate of N jobs.
    jobs: int | None = None
    job_runs_per_day: float = 2.0  # each job of a generated estate
    job_visibility: Literal["collection", "immediate"] = "collection"
    em_version: Literal["12", "13"] = "12"
    query_window_days: float = 91.0  # 0: no limit
    query_page_size_cap: int = 0  # 0: no cap
    query_previous_link: bool = False
    query_empty: Literal["list", "null"] = "list"
    latency_per_mb: float = 0.0


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(SimulatorSettings))
RUNTIME_KNOBS = FIELD_NAMES - STARTUP_ONLY


def validate(settings: SimulatorSettings) -> None:
    """Raise ValueError naming the first bad setting."""
    checks: list[tuple[bool, str]] = [
        (_is_int(settings.seed), "seed must be an integer"),
        (
            _is_int(settings.backup_servers) and 1 <= settings.backup_servers <= 500,
            "backup_servers must be an integer from 1 to 500",
        ),
        (
            _is_number(settings.history_days) and 0 <= settings.history_days <= WINDOW_DAYS,
            f"history_days must be from 0 to {WINDOW_DAYS}",
        ),
        (isinstance(settings.live, bool), "live must be a boolean"),
        (_is_number(settings.speed) and settings.speed > 0, "speed must be a number above 0"),
        (isinstance(settings.username, str) and settings.username != "", "username is empty"),
        (isinstance(settings.password, str), "password must be a string"),
        (settings.json_casing in ("pascal", "camel"), "json_casing must be pascal or camel"),
        (isinstance(settings.bom, bool), "bom must be a boolean"),
        (
            settings.result_vocabulary in ("state", "short"),
            "result_vocabulary must be state or short",
        ),
        (
            _is_int(settings.fraction_digits) and 0 <= settings.fraction_digits <= 7,
            "fraction_digits must be an integer from 0 to 7",
        ),
        (
            isinstance(settings.references_for_plain_path, bool),
            "references_for_plain_path must be a boolean",
        ),
        (
            _is_number(settings.token_idle_expiry) and settings.token_idle_expiry > 0,
            "token_idle_expiry must be a number of seconds above 0",
        ),
        (_is_number(settings.latency) and settings.latency >= 0, "latency must be >= 0"),
        (isinstance(settings.tls, bool), "tls must be a boolean"),
        (isinstance(settings.host, str) and settings.host != "", "host is empty"),
        (_is_int(settings.port) and 0 <= settings.port <= 65535, "port must be 0..65535"),
        (
            settings.hostname_in_hrefs is None
            or (isinstance(settings.hostname_in_hrefs, str) and settings.hostname_in_hrefs != ""),
            "hostname_in_hrefs must be a non-empty string or None",
        ),
        (
            _is_int(settings.extra_session_types)
            and 0 <= settings.extra_session_types <= MAX_EXTRA_SESSION_TYPES,
            f"extra_session_types must be an integer from 0 to {MAX_EXTRA_SESSION_TYPES:,}",
        ),
        (
            _is_number(settings.fail_every) and settings.fail_every >= 0,
            "fail_every must be a number of seconds >= 0",
        ),
        (
            settings.jobs is None or (_is_int(settings.jobs) and 0 <= settings.jobs <= MAX_JOBS),
            f"jobs must be None (the demo estate) or an integer from 0 to {MAX_JOBS:,}",
        ),
        (
            _is_number(settings.job_runs_per_day) and 0 < settings.job_runs_per_day <= 288,
            "job_runs_per_day must be a number above 0 and at most 288",
        ),
        (
            settings.job_visibility in ("collection", "immediate"),
            "job_visibility must be collection or immediate",
        ),
        (settings.em_version in ("12", "13"), "em_version must be '12' or '13'"),
        (
            _is_number(settings.query_window_days) and settings.query_window_days >= 0,
            "query_window_days must be a number of days >= 0",
        ),
        (
            _is_int(settings.query_page_size_cap) and settings.query_page_size_cap >= 0,
            "query_page_size_cap must be an integer >= 0",
        ),
        (
            isinstance(settings.query_previous_link, bool),
            "query_previous_link must be a boolean",
        ),
        (settings.query_empty in ("list", "null"), "query_empty must be list or null"),
        (
            _is_number(settings.latency_per_mb) and settings.latency_per_mb >= 0,
            "latency_per_mb must be a number of seconds >= 0",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def updated(settings: SimulatorSettings, knobs: dict[str, object]) -> SimulatorSettings:
    """A validated copy with run-time knobs changed; startup-only or unknown names are errors."""
    for name in knobs:
        if name in STARTUP_ONLY:
            raise ValueError(f"{name} can only be set when the simulator is created")
        if name not in FIELD_NAMES:
            raise ValueError(f"unknown setting {name!r}")
    new = dataclasses.replace(settings, **knobs)  # type: ignore[arg-type]
    validate(new)
    return new
