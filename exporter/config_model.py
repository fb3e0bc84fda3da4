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
