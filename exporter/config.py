"""Configuration: YAML file or environment -> frozen dataclasses, every error with its path.

Each key is declared once, on the field that holds it (exporter.config_model): its kind, its
default, its environment variable and how ``--config.check`` shows it; reading, suggestions,
the environment map and the summary come from there. What is written by hand here are the
rules between keys: a server inherits ``poll_interval`` and ``stale_after`` from
the top level, ``stale_after`` is at least ``poll_interval`` (three times it by default),
exactly one of ``password`` and ``password_file`` is set, and in the environment the name
defaults to the URL's host.

Both sources go through the same checker: the environment is first turned into the raw shape a
YAML file would have, and only the paths shown in error messages differ (``servers[0].url`` in
a file, ``VEEAM_EM_URL`` in the environment).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from exporter.config_kinds import normalize_url as normalize_url
from exporter.config_model import DEFAULT_FORMAT as DEFAULT_FORMAT
from exporter.config_model import DEFAULT_LOGON_RETRY_AFTER as DEFAULT_LOGON_RETRY_AFTER
from exporter.config_model import DEFAULT_MAX_ANSWER_SIZE as DEFAULT_MAX_ANSWER_SIZE
from exporter.config_model import DEFAULT_MAX_LOGON_FAILURES as DEFAULT_MAX_LOGON_FAILURES
from exporter.config_model import DEFAULT_MAX_SESSION_TYPES as DEFAULT_MAX_SESSION_TYPES
from exporter.config_model import DEFAULT_POLL_INTERVAL as DEFAULT_POLL_INTERVAL
from exporter.config_model import DEFAULT_STALE_AFTER as DEFAULT_STALE_AFTER
from exporter.config_model import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from exporter.config_model import MIN_LOGON_RETRY_AFTER as MIN_LOGON_RETRY_AFTER
from exporter.config_model import MIN_POLL_INTERVAL as MIN_POLL_INTERVAL
from exporter.config_model import STALE_AFTER_FACTOR as STALE_AFTER_FACTOR
from exporter.config_model import Config as Config
from exporter.config_model import Format as Format
from exporter.config_model import JobSessionsConfig as JobSessionsConfig
from exporter.config_model import ServerConfig as ServerConfig
from exporter.config_model import SessionTypeFilter as SessionTypeFilter
from exporter.config_model import TLSConfig as TLSConfig
from exporter.durations import format_duration as format_duration
from exporter.durations import parse_duration as parse_duration
from exporter.schema import (
    Invalid,
    SchemaChecker,
    Section,
    defaults,
    describe,
    env_paths,
    env_raw,
    keys,
)
from exporter.secretfile import SecretFileError, read_secret_file

# ConfigError is re-exported: callers catch exporter.config.ConfigError.
from exporter.validation import ConfigError as ConfigError
from exporter.validation import (
    EnvPathStyle,
    PathStyle,
    Raw,
    config_dir,
    join_path,
    kind,
    read_yaml,
)

# ---------------------------------------------------------------------------------------------
# Checking a raw (YAML-shaped) configuration

# A top-level key that a server also has is that server's default. poll_interval and
# stale_after are inherited by hand below: stale_after also follows poll_interval.
_INHERITED = tuple(
    name
    for name in keys(Config)
    if name in keys(ServerConfig) and name not in ("poll_interval", "stale_after")
)
# Of those, the sections (job_sessions): a server that sets one overrides the top-level one key
# by key, so `job_sessions: {enabled: false}` on a server keeps the global window.
_MERGED = tuple(name for name in _INHERITED if isinstance(keys(ServerConfig)[name].kind, Section))


class _ConfigChecker(SchemaChecker):
    """The rules between keys; each key's own checks come from its declaration."""

    def __init__(self, paths: PathStyle, base_dir: str | None, *, name_from_url: bool) -> None:
        super().__init__(paths, base_dir)
        self.name_from_url = name_from_url

    def config(self, raw: object) -> Config | None:
        top = self.section(raw, "", Config, exclude=("servers",))
        if top is None or not isinstance(raw, dict):
            return None
        global_poll = _float(top.get("poll_interval", DEFAULT_POLL_INTERVAL))
        if "poll_interval" in self.bad:
            global_poll = None
        stale_set = "stale_after" in top or "stale_after" in self.bad
        global_stale = _float(top.get("stale_after"))
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
        raw_servers = raw.get("servers")
        if raw_servers is None:
            self.add("servers", "required")
        elif not isinstance(raw_servers, list):
            self.add("servers", f"must be a list of servers, got {kind(raw_servers)}")
        elif not raw_servers:
            self.add("servers", "must list at least one server")
        else:
            # A wrong global value is reported once; its servers are then skipped.
            inherited = {
                name: None if name in self.bad else {**defaults(Config), **top}[name]
                for name in _INHERITED
            }
            seen: dict[str, int] = {}
            for index, item in enumerate(raw_servers):
                server = self.server(
                    item,
                    f"servers[{index}]",
                    inherited=inherited,
                    inherited_raw=raw,
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
        values = {**top, "poll_interval": global_poll, "stale_after": global_stale}
        config = self.build(Config, {**values, "servers": tuple(servers)}, "configuration")
        return None if isinstance(config, Invalid) else config

    def server(
        self,
        raw: object,
        path: str,
        *,
        inherited: Mapping[str, object],
        inherited_raw: Raw,
        global_poll: float | None,
        global_stale: float | None,
        stale_set: bool,
    ) -> ServerConfig | None:
        """One server; None when it has a problem (already reported).

        A None global value means the global key was set but wrong: checks that depend on it
        are skipped rather than reported twice.
        """
        merged = [
            name
            for name in _MERGED
            if isinstance(raw, dict)
            and isinstance(raw.get(name), dict)
            and isinstance(inherited_raw.get(name), dict)
            and inherited.get(name) is not None
            and not any(bad == name or bad.startswith(f"{name}.") for bad in self.bad)
        ]
        values = self.section(
            raw, path, ServerConfig, exclude=("name", "password", "password_file", *merged)
        )
        if values is None or not isinstance(raw, dict):
            return None
        entry: Raw = {k: v for k, v in raw.items() if v is not None}
        for section in merged:
            value = self.merged_section(section, inherited_raw[section], raw[section], path)
            if isinstance(value, Invalid):
                self.bad.add(join_path(path, section))
            else:
                values[section] = value

        name = self.string(entry, "name", path, required=not self.name_from_url)
        url = values.get("url")
        if name is None and self.name_from_url and "name" not in entry and isinstance(url, str):
            name = urlsplit(url).hostname
        password, password_file = self.password(entry, path)

        poll = _float(values.get("poll_interval"))
        if "poll_interval" not in entry:
            poll = global_poll
        stale = _float(values.get("stale_after"))
        if stale is not None and poll is not None and stale < poll:
            self.add(
                join_path(path, "stale_after"),
                f"must be at least this server's poll_interval ({format_duration(poll)}), "
                f"got {format_duration(stale)}",
            )
            stale = None
        if "stale_after" not in entry:
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

        for inherited_name, value in inherited.items():
            if inherited_name not in entry:
                values[inherited_name] = value
        bad = any(where.startswith(f"{path}.") for where in self.bad)
        if bad or None in (name, password, poll, stale, *values.values()) or "url" not in values:
            return None
        values.update(
            name=name,
            password=password,
            password_file=password_file,
            poll_interval=poll,
            stale_after=stale,
        )
        server = self.build(ServerConfig, values, path)
        return None if isinstance(server, Invalid) else server

    def merged_section(self, name: str, base: object, own: object, path: str) -> object:
        """A section a server sets over a valid top-level one: the server's keys win.

        Only the top-level keys the section knows are taken (an unknown one was reported
        there), so no problem of the top level is reported again under the server.
        """
        section = keys(ServerConfig)[name].kind
        if not (isinstance(section, Section) and isinstance(base, dict) and isinstance(own, dict)):
            raise TypeError(f"{name} is not a section set at both levels")
        known = keys(section.cls)
        combined = {k: v for k, v in base.items() if k in known and v is not None}
        combined.update({k: v for k, v in own.items() if v is not None})
        return section.read(self, combined, join_path(path, name))

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
        try:
            return read_secret_file(resolved), resolved
        except SecretFileError as exc:
            self.add(file_path, exc.describe())
            return None, resolved


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


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


ENV_PATHS = {
    **env_paths(Config),
    **env_paths(ServerConfig, "servers[0]"),
    # The only problem about the server as a whole is "password xor password_file".
    "servers[0]": "VEEAM_EM_PASSWORD",
}
ENV_VARIABLES = tuple(sorted(set(ENV_PATHS.values())))


def load_env(environ: Mapping[str, str]) -> Config:
    """One server from the VEEAM_EM_* variables; ConfigError lists every problem found.

    An empty variable counts as unset, as with `VAR=` in a compose file.
    """
    problems: list[str] = []
    raw: Raw = {
        **env_raw(Config, environ, problems),
        "servers": [env_raw(ServerConfig, environ, problems)],
    }
    checker = _ConfigChecker(EnvPathStyle(ENV_PATHS), None, name_from_url=True)
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
    lines = [f"{count} server{'s' if count != 1 else ''}"]
    lines += [f"{name}: {shown}" for name, shown in describe(config) if name != "servers"]
    lines.append("servers:")
    for server in config.servers:
        for index, (name, shown) in enumerate(describe(server)):
            lines.append(f"  {'- ' if index == 0 else '  '}{name}: {shown}")
    return "\n".join(lines)
