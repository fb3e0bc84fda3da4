"""The configuration's dataclasses: each key declared once, on the field that holds it.

A field made with ``key()`` (exporter.schema) carries the key's kind, default, environment
variable and how ``--config.check`` shows it; exporter.config reads files and the environment
into these classes. Each class also holds itself to its keys' rules in ``__post_init__``, so
no caller can build a configuration that a file could not hold.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from exporter.config_kinds import CABundle, Url
from exporter.durations import format_duration
from exporter.schema import (
    Choice,
    Count,
    Duration,
    FilePath,
    Flag,
    Kind,
    Section,
    Size,
    Text,
    TextList,
    check_keys,
    key,
    settings,
)

Format = Literal["xml", "json"]

DEFAULT_POLL_INTERVAL = 60.0
# The EM serves every client from one service: polling faster adds load and shows nothing new.
MIN_POLL_INTERVAL = 10.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_FORMAT: Format = "xml"
STALE_AFTER_FACTOR = 3
DEFAULT_STALE_AFTER = STALE_AFTER_FACTOR * DEFAULT_POLL_INTERVAL
# Refused logons in a row before logons to a server are suspended (0: never), and how long a
# suspension lasts before one more attempt: a wrong password must not lock the EM account.
DEFAULT_MAX_LOGON_FAILURES = 3
DEFAULT_LOGON_RETRY_AFTER = 3600.0
MIN_LOGON_RETRY_AFTER = 60.0
# The decoded body of one answer, and the session types exported per server: whatever an EM
# answers, the exporter's memory and its scrape stay bounded.
DEFAULT_MAX_ANSWER_SIZE = 1024**3
DEFAULT_MAX_SESSION_TYPES = 100
# The backup job session feed. The EM learns of job sessions only at its data collection
# (every 15 minutes by default), so polling faster than a minute shows nothing new. Its window
# must hold the longest session plus a few collections; the EM keeps 30 days of sessions.
DEFAULT_JOB_POLL_INTERVAL = 300.0
MIN_JOB_POLL_INTERVAL = 60.0
DEFAULT_JOB_WINDOW = 48 * 3600.0
DEFAULT_JOB_BOOTSTRAP_WINDOW = 8 * 86400.0
MIN_JOB_WINDOW = 3600.0
MAX_JOB_WINDOW = 30 * 86400.0
DEFAULT_JOB_PAGE_SIZE = 500
MIN_JOB_PAGE_SIZE = 50
MAX_JOB_PAGE_SIZE = 1000
DEFAULT_JOB_MAX_PAGES = 40


# ---------------------------------------------------------------------------------------------
# The configuration


def _unverified(tls: TLSConfig) -> str:
    return " (certificates are NOT verified)" if tls.insecure_skip_verify else ""


@settings
class TLSConfig:
    ca_file: str | None = key(
        CABundle(),
        default=None,
        env="VEEAM_EM_CA_FILE",
        blank="(system default CA certificates)",
    )
    insecure_skip_verify: bool = key(
        Flag(), default=False, env="VEEAM_EM_INSECURE_SKIP_VERIFY", note=_unverified
    )

    def __post_init__(self) -> None:
        check_keys(self)


@settings
class SessionTypeFilter:
    include: tuple[str, ...] = key(TextList(), default=(), blank="(all)")
    exclude: tuple[str, ...] = key(TextList(), default=())

    def __post_init__(self) -> None:
        check_keys(self)

    def allows(self, session_type: str) -> bool:
        if self.include and session_type not in self.include:
            return False
        return session_type not in self.exclude


@settings
class JobSessionsConfig:
    """The backup job session feed: its schedule, its query window and its paging guards."""

    enabled: bool = key(Flag(), default=True, env="VEEAM_EM_JOB_SESSIONS_ENABLED")
    poll_interval: float = key(
        Duration(MIN_JOB_POLL_INTERVAL),
        default=DEFAULT_JOB_POLL_INTERVAL,
        env="VEEAM_EM_JOB_SESSIONS_POLL_INTERVAL",
    )
    window: float = key(
        Duration(MIN_JOB_WINDOW, MAX_JOB_WINDOW),
        default=DEFAULT_JOB_WINDOW,
        env="VEEAM_EM_JOB_SESSIONS_WINDOW",
    )
    bootstrap_window: float = key(
        Duration(MIN_JOB_WINDOW, MAX_JOB_WINDOW),
        default=DEFAULT_JOB_BOOTSTRAP_WINDOW,
        env="VEEAM_EM_JOB_SESSIONS_BOOTSTRAP_WINDOW",
    )
    page_size: int = key(
        Count(MIN_JOB_PAGE_SIZE, MAX_JOB_PAGE_SIZE),
        default=DEFAULT_JOB_PAGE_SIZE,
        env="VEEAM_EM_JOB_SESSIONS_PAGE_SIZE",
    )
    max_pages: int = key(
        Count(1), default=DEFAULT_JOB_MAX_PAGES, env="VEEAM_EM_JOB_SESSIONS_MAX_PAGES"
    )
    job_types: SessionTypeFilter = key(Section(SessionTypeFilter), default=SessionTypeFilter())

    def __post_init__(self) -> None:
        check_keys(self)
        if self.bootstrap_window < self.window:
            raise ValueError(
                f"bootstrap_window: must be at least window ({format_duration(self.window)}), "
                f"got {format_duration(self.bootstrap_window)}"
            )
        # A session that starts and ends between two polls must still be in the next answer.
        if self.window < 2 * self.poll_interval:
            raise ValueError(
                f"window: must be at least twice poll_interval "
                f"({format_duration(2 * self.poll_interval)}), got {format_duration(self.window)}"
            )


def _password_source(server: ServerConfig) -> str:
    return f" (read from {server.password_file})" if server.password_file else ""


@settings
class ServerConfig:
    """One EM. Built only with values a configuration file could hold (ValueError otherwise).

    ``poll_floor`` is not a key: no file or variable can lower it. Only ``--demo`` sets it
    below ``MIN_POLL_INTERVAL``, for the simulated EM that the process itself runs on loopback.
    """

    name: str = key(Text(), env="VEEAM_EM_NAME")
    url: str = key(Url(), env="VEEAM_EM_URL")  # scheme://host[:port]; /api is appended
    username: str = key(Text(), env="VEEAM_EM_USERNAME")
    password: str = key(Text(secret=True), env="VEEAM_EM_PASSWORD", note=_password_source)
    password_file: str | None = key(FilePath(), default=None, env="VEEAM_EM_PASSWORD_FILE")
    format: Format = key(Choice("xml", "json"), default=DEFAULT_FORMAT, env="VEEAM_EM_FORMAT")
    poll_interval: float = key(Duration(MIN_POLL_INTERVAL), default=DEFAULT_POLL_INTERVAL)
    stale_after: float = key(Duration(), default=DEFAULT_STALE_AFTER)
    timeout: float = key(Duration(), default=DEFAULT_TIMEOUT, env="VEEAM_EM_TIMEOUT")
    max_answer_size: int = key(Size(), default=DEFAULT_MAX_ANSWER_SIZE)
    max_session_types: int = key(Count(1), default=DEFAULT_MAX_SESSION_TYPES)
    max_logon_failures: int = key(Count(0), default=DEFAULT_MAX_LOGON_FAILURES)
    logon_retry_after: float = key(
        Duration(MIN_LOGON_RETRY_AFTER), default=DEFAULT_LOGON_RETRY_AFTER
    )
    tls: TLSConfig = key(Section(TLSConfig), default=TLSConfig())
    session_types: SessionTypeFilter = key(Section(SessionTypeFilter), default=SessionTypeFilter())
    # Set from the environment at the top level only; a server inherits it (exporter.config).
    job_sessions: JobSessionsConfig = key(
        Section(JobSessionsConfig, env=False), default=JobSessionsConfig()
    )
    poll_floor: float = dataclasses.field(default=MIN_POLL_INTERVAL, repr=False)

    def __post_init__(self) -> None:
        if not self.poll_floor > 0:
            raise ValueError(f"poll_floor: must be greater than 0, got {self.poll_floor}")
        check_keys(self, {"poll_interval": self.poll_floor})
        _check_stale_after(self.poll_interval, self.stale_after)


class Servers(Kind[tuple[ServerConfig, ...]]):
    """The server list, read by hand (inheritance, unique names); checked here when built."""

    def check(self, value: object, minimum: float | None = None) -> tuple[ServerConfig, ...]:
        if not isinstance(value, tuple) or not value:
            raise ValueError("must list at least one server")
        names = [server.name for server in value if isinstance(server, ServerConfig)]
        if len(names) != len(value):
            raise ValueError("must hold only ServerConfig values")
        if len(set(names)) != len(names):
            raise ValueError("names must be unique")
        return value

    def show(self, value: tuple[ServerConfig, ...]) -> str:
        return str(len(value))


@settings
class Config:
    poll_interval: float = key(
        Duration(MIN_POLL_INTERVAL), default=DEFAULT_POLL_INTERVAL, env="VEEAM_EM_POLL_INTERVAL"
    )
    stale_after: float = key(Duration(), default=DEFAULT_STALE_AFTER, env="VEEAM_EM_STALE_AFTER")
    max_answer_size: int = key(
        Size(), default=DEFAULT_MAX_ANSWER_SIZE, env="VEEAM_EM_MAX_ANSWER_SIZE"
    )
    max_session_types: int = key(
        Count(1), default=DEFAULT_MAX_SESSION_TYPES, env="VEEAM_EM_MAX_SESSION_TYPES"
    )
    max_logon_failures: int = key(
        Count(0), default=DEFAULT_MAX_LOGON_FAILURES, env="VEEAM_EM_MAX_LOGON_FAILURES"
    )
    logon_retry_after: float = key(
        Duration(MIN_LOGON_RETRY_AFTER),
        default=DEFAULT_LOGON_RETRY_AFTER,
        env="VEEAM_EM_LOGON_RETRY_AFTER",
    )
    job_sessions: JobSessionsConfig = key(Section(JobSessionsConfig), default=JobSessionsConfig())
    servers: tuple[ServerConfig, ...] = key(Servers())

    def __post_init__(self) -> None:
        check_keys(self)
        _check_stale_after(self.poll_interval, self.stale_after)


def _check_stale_after(poll_interval: float, stale_after: float) -> None:
    if stale_after < poll_interval:
        raise ValueError(
            f"stale_after: must be at least poll_interval ({format_duration(poll_interval)}), "
            f"got {format_duration(stale_after)}"
        )
