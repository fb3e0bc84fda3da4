"""Configuration: YAML file or environment -> frozen dataclasses, every error with its path.

Both sources go through the same checker: the environment is first turned into the raw shape a
YAML file would have, and only the paths shown in error messages differ (``servers[0].url`` in
a file, ``VEEAM_EM_URL`` in the environment).
"""

from __future__ import annotations

import math
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

# ConfigError is re-exported: callers catch exporter.config.ConfigError.
from exporter.validation import ConfigError as ConfigError
from exporter.validation import (
    EnvPathStyle,
    FieldChecker,
    PathStyle,
    Raw,
    config_dir,
    join_path,
    kind,
    read_yaml,
)

Format = Literal["xml", "json"]

DEFAULT_POLL_INTERVAL = 60.0
MIN_POLL_INTERVAL = 10.0
DEFAULT_TIMEOUT = 30.0
STALE_AFTER_FACTOR = 3


@dataclass(frozen=True)
class TLSConfig:
    ca_file: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class SessionTypeFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def allows(self, session_type: str) -> bool:
        if self.include and session_type not in self.include:
            return False
        return session_type not in self.exclude


@dataclass(frozen=True)
class ServerConfig:
    name: str
    url: str  # scheme://host[:port], no trailing slash, no /api
    username: str
    password: str = field(repr=False)
    poll_interval: float = 60.0
    stale_after: float = 180.0
    timeout: float = 30.0
    format: Format = "xml"
    tls: TLSConfig = TLSConfig()
    session_types: SessionTypeFilter = SessionTypeFilter()
    password_file: str | None = None


@dataclass(frozen=True)
class Config:
    servers: tuple[ServerConfig, ...]
    poll_interval: float = 60.0
    stale_after: float = 180.0


# ---------------------------------------------------------------------------------------------
# Durations

_UNITS_MS = {
    "y": 365 * 24 * 3600 * 1000,
    "w": 7 * 24 * 3600 * 1000,
    "d": 24 * 3600 * 1000,
    "h": 3600 * 1000,
    "m": 60 * 1000,
    "s": 1000,
    "ms": 1,
}
# Prometheus' grammar: units largest first, each at most once, integers only.
_DURATION_RE = re.compile(
    r"(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?"
    r"(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?"
)
_NUMBER_RE = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_DURATION_HINT = "use a number of seconds or a duration such as 500ms, 90s, 5m, 1h30m, 1d"


def parse_duration(value: object) -> float:
    """Seconds from a Prometheus-style duration (``1h30m``) or a plain number of seconds."""
    # bool is an int subclass; `poll_interval: yes` must not silently mean one second.
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: a boolean is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(f"invalid duration {value!r}: must be a finite number")
        if seconds < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return seconds
    if not isinstance(value, str):
        raise ValueError(f"invalid duration of type {type(value).__name__}: {_DURATION_HINT}")
    text = value.strip()
    if not text:
        raise ValueError(f"invalid duration {value!r}: empty; {_DURATION_HINT}")
    if text.startswith("-"):
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    if _NUMBER_RE.fullmatch(text):
        return float(text)
    match = _DURATION_RE.fullmatch(text)
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
    millis = sum(int(count) * _UNITS_MS[unit] for unit, count in match.groupdict().items() if count)
    return millis / 1000


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration for display: ``90.0`` -> ``1m30s``."""
    millis = round(seconds * 1000)
    if seconds < 0 or not math.isclose(millis, seconds * 1000, abs_tol=1e-6):
        return f"{seconds:g}s"
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS_MS.items():
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# URLs


def normalize_url(value: str) -> str:
    """``scheme://host[:port]`` from an EM base URL, or ValueError saying what is wrong.

    Messages never quote the whole URL: it may carry credentials (``https://user:pw@host``).
    """
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if any(char.isspace() for char in text):
        raise ValueError("must not contain whitespace")
    if "://" not in text:
        raise ValueError("must start with http:// or https:// (e.g. https://em01.example.com:9398)")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"scheme must be http or https, got {parts.scheme!r}")
    if "@" in parts.netloc:
        raise ValueError("must not contain credentials; use username and password instead")
    host = parts.hostname
    if not host:
        raise ValueError("has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port; it must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("has an invalid port; it must be a number from 1 to 65535")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError("must not have a query string or fragment")
    path = parts.path
    if path.rstrip("/").lower() == "/api":
        raise ValueError(
            "must not end with /api: the exporter appends /api itself; "
            "give only scheme://host:port (e.g. https://em01.example.com:9398)"
        )
    if path not in ("", "/"):
        # An "@" here means a mangled user:password@host; do not quote it back.
        shown = f", got {path!r}" if "@" not in path else ""
        raise ValueError(f"must not have a path{shown}; give only scheme://host:port")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}"


# ---------------------------------------------------------------------------------------------
# Checking a raw (YAML-shaped) configuration

_TOP_KEYS = ("poll_interval", "stale_after", "servers")
_SERVER_KEYS = (
    "name",
    "url",
    "username",
    "password",
    "password_file",
    "timeout",
    "format",
    "poll_interval",
    "stale_after",
    "tls",
    "session_types",
)
_TLS_KEYS = ("ca_file", "insecure_skip_verify")
_SESSION_TYPES_KEYS = ("include", "exclude")


class _ConfigChecker(FieldChecker):
    """The exporter's configuration schema, on top of the shared field checks."""

    def __init__(self, paths: PathStyle, base_dir: str | None, *, name_from_url: bool) -> None:
        super().__init__(paths, base_dir)
        self.name_from_url = name_from_url

    def duration(self, raw: Raw, key: str, path: str, *, minimum: float) -> float | None:
        """Seconds, or None if absent or wrong (callers tell which by ``key in raw``).

        ``minimum=0`` means "greater than 0": a zero timeout or stale_after is never meant.
        """
        where = join_path(path, key)
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.add(where, f"must be a duration such as 60s or 5m, got {kind(value)}")
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.add(where, str(exc))
            return None
        if minimum == 0 and seconds == 0:
            self.add(where, "must be greater than 0")
            return None
        if seconds < minimum:
            self.add(where, f"must be at least {format_duration(minimum)}, got {value}")
            return None
        return seconds

    def config(self, raw: object) -> Config | None:
        top = self.mapping(raw, "", _TOP_KEYS)
        if top is None:
            return None
        poll_set = "poll_interval" in top
        poll = self.duration(top, "poll_interval", "", minimum=MIN_POLL_INTERVAL)
        global_poll = poll if poll_set else DEFAULT_POLL_INTERVAL
        stale_set = "stale_after" in top
        global_stale = self.duration(top, "stale_after", "", minimum=0)
        if global_stale is not None and global_poll is not None and global_stale < global_poll:
            self.add(
                "stale_after",
                f"must be at least {self.paths.term('poll_interval')} "
                f"({format_duration(global_poll)}), got {format_duration(global_stale)}",
            )
            global_stale = None
        if not stale_set and global_poll is not None:
            global_stale = STALE_AFTER_FACTOR * global_poll

        servers: list[ServerConfig] = []
        raw_servers = top.get("servers")
        if raw_servers is None:
            self.add("servers", "required")
        elif not isinstance(raw_servers, list):
            self.add("servers", f"must be a list of servers, got {kind(raw_servers)}")
        elif not raw_servers:
            self.add("servers", "must list at least one server")
        else:
            seen: dict[str, int] = {}
            for index, item in enumerate(raw_servers):
                server = self.server(
                    item,
                    f"servers[{index}]",
                    global_poll=global_poll,
                    global_stale=global_stale if stale_set else None,
                    stale_set=stale_set,
                )
                # Checked on the raw name so that a duplicate is reported even while either
                # server has other problems, rather than surfacing only after they are fixed.
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str) and name.strip():
                    if name in seen:
                        self.add(
                            f"servers[{index}].name",
                            f"duplicate name {name!r} (also servers[{seen[name]}]); "
                            "names must be unique",
                        )
                        continue
                    seen[name] = index
                if server is not None:
                    servers.append(server)

        if self.problems or global_poll is None or global_stale is None:
            return None
        return Config(servers=tuple(servers), poll_interval=global_poll, stale_after=global_stale)

    def server(
        self,
        raw: object,
        path: str,
        *,
        global_poll: float | None,
        global_stale: float | None,
        stale_set: bool,
    ) -> ServerConfig | None:
        """One server; None when it has a problem (already reported).

        A None global value means the global key was set but wrong: checks that depend on it
        are skipped rather than reported twice.
        """
        entry = self.mapping(raw, path, _SERVER_KEYS)
        if entry is None:
            return None
        ok = True

        url = self.string(entry, "url", path, required=True)
        host: str | None = None
        if url is not None:
            try:
                url = normalize_url(url)
                host = urlsplit(url).hostname
            except ValueError as exc:
                self.add(join_path(path, "url"), str(exc))
                url = None
        ok &= url is not None

        name = self.string(entry, "name", path, required=not self.name_from_url)
        if name is None and self.name_from_url and "name" not in entry:
            name = host
        ok &= name is not None

        username = self.string(entry, "username", path, required=True)
        ok &= username is not None

        password, password_file = self.password(entry, path)
        ok &= password is not None

        timeout = self.duration(entry, "timeout", path, minimum=0)
        ok &= timeout is not None or "timeout" not in entry

        fmt: Format = "xml"
        raw_format = self.string(entry, "format", path)
        if raw_format is not None:
            if raw_format.strip().lower() == "json":
                fmt = "json"
            elif raw_format.strip().lower() != "xml":
                self.add(join_path(path, "format"), f"must be xml or json, got {raw_format!r}")
                ok = False
        elif "format" in entry:
            ok = False

        poll = self.duration(entry, "poll_interval", path, minimum=MIN_POLL_INTERVAL)
        if "poll_interval" not in entry:
            poll = global_poll
        stale = self.duration(entry, "stale_after", path, minimum=0)
        own_stale = "stale_after" in entry
        if stale is not None and poll is not None and stale < poll:
            self.add(
                join_path(path, "stale_after"),
                f"must be at least this server's poll_interval ({format_duration(poll)}), "
                f"got {format_duration(stale)}",
            )
            stale = None
        if not own_stale:
            if stale_set:
                stale = global_stale
                # Only a per-server poll_interval can outgrow a valid global stale_after:
                # with the global poll_interval the global check has already spoken.
                if stale is not None and poll is not None and stale < poll:
                    self.add(
                        "stale_after",
                        f"must be at least {self.paths.path(join_path(path, 'poll_interval'))} "
                        f"({format_duration(poll)}), got {format_duration(stale)}; "
                        f"or set {self.paths.path(join_path(path, 'stale_after'))}",
                    )
                    stale = None
            elif poll is not None:
                stale = STALE_AFTER_FACTOR * poll

        tls = self.tls(entry.get("tls"), join_path(path, "tls"))
        session_types = self.session_types(
            entry.get("session_types"), join_path(path, "session_types")
        )

        if (
            not ok
            or name is None
            or url is None
            or username is None
            or password is None
            or poll is None
            or stale is None
            or tls is None
            or session_types is None
        ):
            return None
        return ServerConfig(
            name=name,
            url=url,
            username=username,
            password=password,
            password_file=password_file,
            poll_interval=poll,
            stale_after=stale,
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
            format=fmt,
            tls=tls,
            session_types=session_types,
        )

    def password(self, entry: Raw, path: str) -> tuple[str | None, str | None]:
        """(password, password_file); the password is None when there is a problem."""
        has_value = "password" in entry
        has_file = "password_file" in entry
        pw_path = join_path(path, "password")
        file_path = join_path(path, "password_file")
        if has_value and has_file:
            self.add(
                path,
                f"{self.paths.term(pw_path)} and {self.paths.term(file_path)} are mutually "
                "exclusive; set only one",
            )
            return None, None
        if not has_value and not has_file:
            self.add(
                path,
                f"one of {self.paths.term(pw_path)} or {self.paths.term(file_path)} is required",
            )
            return None, None
        if has_value:
            return self.string(entry, "password", path), None
        name = self.string(entry, "password_file", path)
        if name is None:
            return None, None
        resolved = self.file_path(name)
        data = self.read_file(file_path, resolved)
        if data is None:
            return None, resolved
        try:
            # Secret files are commonly written with a trailing newline (echo, editors, k8s).
            secret = data.decode("utf-8-sig").strip()
        except UnicodeDecodeError:
            self.add(file_path, f"{resolved} is not valid UTF-8")
            return None, resolved
        if not secret:
            self.add(file_path, f"{resolved} is empty")
            return None, resolved
        return secret, resolved

    def tls(self, raw: object, path: str) -> TLSConfig | None:
        if raw is None:
            return TLSConfig()
        entry = self.mapping(raw, path, _TLS_KEYS)
        if entry is None:
            return None
        ok = True
        ca_file = self.string(entry, "ca_file", path)
        if ca_file is not None:
            ca_file = self.file_path(ca_file)
            ok = self.ca_bundle(join_path(path, "ca_file"), ca_file)
        elif "ca_file" in entry:
            ok = False
        insecure = self.boolean(entry, "insecure_skip_verify", path)
        if insecure is None and "insecure_skip_verify" in entry:
            ok = False
        if not ok:
            return None
        return TLSConfig(ca_file=ca_file, insecure_skip_verify=bool(insecure))

    def session_types(self, raw: object, path: str) -> SessionTypeFilter | None:
        if raw is None:
            return SessionTypeFilter()
        entry = self.mapping(raw, path, _SESSION_TYPES_KEYS)
        if entry is None:
            return None
        include = self.string_list(entry, "include", path)
        exclude = self.string_list(entry, "exclude", path)
        if include is None or exclude is None:
            return None
        return SessionTypeFilter(include=include, exclude=exclude)

    def ca_bundle(self, canonical: str, name: str) -> bool:
        """Whether the CA bundle is usable; found now rather than as a TLS error per poll."""
        if self.read_file(canonical, name) is None:
            return False
        try:
            ssl.create_default_context().load_verify_locations(cafile=name)
        except (ssl.SSLError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            self.add(canonical, f"{name} is not a PEM CA certificate bundle ({reason})")
            return False
        return True


# ---------------------------------------------------------------------------------------------
# Sources


def load_file(path: str | os.PathLike[str]) -> Config:
    """The configuration in a YAML file; ConfigError lists every problem found."""
    name = os.fspath(path)
    raw = read_yaml(name)
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else f"a {kind(raw)}"
        raise ConfigError([f"{name}: must be a mapping with a servers list, got {got}"])
    checker = _ConfigChecker(PathStyle(), config_dir(name), name_from_url=False)
    return _finish(checker, raw)


_ENV_SERVER = {
    "name": "VEEAM_EM_NAME",
    "url": "VEEAM_EM_URL",
    "username": "VEEAM_EM_USERNAME",
    "password": "VEEAM_EM_PASSWORD",
    "password_file": "VEEAM_EM_PASSWORD_FILE",
    "timeout": "VEEAM_EM_TIMEOUT",
    "format": "VEEAM_EM_FORMAT",
}
_ENV_TOP = {
    "poll_interval": "VEEAM_EM_POLL_INTERVAL",
    "stale_after": "VEEAM_EM_STALE_AFTER",
}
_ENV_TLS = {
    "ca_file": "VEEAM_EM_CA_FILE",
    "insecure_skip_verify": "VEEAM_EM_INSECURE_SKIP_VERIFY",
}
_ENV_PATHS = {
    **_ENV_TOP,
    **{f"servers[0].{key}": var for key, var in _ENV_SERVER.items()},
    **{f"servers[0].tls.{key}": var for key, var in _ENV_TLS.items()},
    # The only problem about the server as a whole is "password xor password_file".
    "servers[0]": "VEEAM_EM_PASSWORD",
}
ENV_VARIABLES = tuple(sorted(set(_ENV_PATHS.values())))
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def load_env(environ: Mapping[str, str]) -> Config:
    """One server from the VEEAM_EM_* variables; ConfigError lists every problem found.

    An empty variable counts as unset, as with `VAR=` in a compose file.
    """
    problems: list[str] = []

    def pick(names: Mapping[str, str]) -> Raw:
        return {key: environ[var] for key, var in names.items() if environ.get(var, "").strip()}

    server = pick(_ENV_SERVER)
    tls = pick(_ENV_TLS)
    if "insecure_skip_verify" in tls:
        text = str(tls["insecure_skip_verify"]).strip().lower()
        if text in _TRUE or text in _FALSE:
            tls["insecure_skip_verify"] = text in _TRUE
        else:
            del tls["insecure_skip_verify"]
            problems.append(
                f"{_ENV_TLS['insecure_skip_verify']}: must be true or false "
                f"(or 1/0, yes/no), got {text!r}"
            )
    if tls:
        server["tls"] = tls
    raw: Raw = {**pick(_ENV_TOP), "servers": [server]}
    checker = _ConfigChecker(EnvPathStyle(_ENV_PATHS), None, name_from_url=True)
    checker.problems.extend(problems)
    return _finish(checker, raw)


def _finish(checker: _ConfigChecker, raw: object) -> Config:
    config = checker.config(raw)
    if checker.problems or config is None:
        raise ConfigError(checker.problems or ["configuration: invalid"])
    return config


# ---------------------------------------------------------------------------------------------
# Display


def summary(config: Config) -> str:
    """A readable account of a valid configuration for ``--config.check``; secrets redacted."""
    count = len(config.servers)
    lines = [
        f"{count} server{'s' if count != 1 else ''}",
        f"poll_interval: {format_duration(config.poll_interval)}",
        f"stale_after: {format_duration(config.stale_after)}",
        "servers:",
    ]
    for server in config.servers:
        tls = server.tls
        filters = server.session_types
        lines += [
            f"  - name: {server.name}",
            f"    url: {server.url}",
            f"    username: {server.username}",
            "    password: <secret>"
            + (f" (read from {server.password_file})" if server.password_file else ""),
            f"    format: {server.format}",
            f"    poll_interval: {format_duration(server.poll_interval)}",
            f"    stale_after: {format_duration(server.stale_after)}",
            f"    timeout: {format_duration(server.timeout)}",
            f"    tls.ca_file: {tls.ca_file or '(system default CA certificates)'}",
            f"    tls.insecure_skip_verify: {str(tls.insecure_skip_verify).lower()}"
            + (" (certificates are NOT verified)" if tls.insecure_skip_verify else ""),
            f"    session_types.include: {', '.join(filters.include) or '(all)'}",
            f"    session_types.exclude: {', '.join(filters.exclude) or '(none)'}",
        ]
    return "\n".join(lines)
