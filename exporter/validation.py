"""Strict checking of YAML-shaped configuration, shared by the exporter's config and web config.

A checker collects every problem, each as ``path: message``, instead of stopping at the first,
so one run shows them all; both files therefore report errors alike. The schemas themselves
live with their configurations (exporter.config, exporter.webconfig).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence

import yaml

Raw = dict[str, object]


class ConfigError(Exception):
    """Every problem found in a configuration, each as ``path: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def kind(value: object) -> str:
    """A value's type in YAML's words, for messages such as "must be a string, got list"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class PathStyle:
    """How a key's canonical path (``servers[0].tls.ca_file``) is shown to the user."""

    def path(self, canonical: str) -> str:
        return canonical

    def term(self, canonical: str) -> str:
        """How a message refers to a sibling key: ``password``, not ``servers[0].password``."""
        return canonical.rsplit(".", 1)[-1]


class EnvPathStyle(PathStyle):
    """Paths shown as the environment variables that set them (``VEEAM_EM_URL``)."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self._names = names

    def path(self, canonical: str) -> str:
        return self._names.get(canonical, canonical)

    def term(self, canonical: str) -> str:
        return self.path(canonical)


class FieldChecker:
    """The shapes every configuration is made of; a schema subclasses it.

    Each method reports its problem and returns None, so a schema can go on checking the
    remaining keys and tell the user about all of them at once.
    """

    def __init__(self, paths: PathStyle, base_dir: str | None) -> None:
        self.paths = paths
        self.base_dir = base_dir
        self.problems: list[str] = []

    def add(self, canonical: str, message: str) -> None:
        line = f"{self.paths.path(canonical)}: {message}"
        if line not in self.problems:
            self.problems.append(line)

    def mapping(self, value: object, path: str, allowed: Sequence[str]) -> Raw | None:
        """The known keys of a mapping; null values are dropped, meaning "use the default"."""
        if not isinstance(value, dict):
            self.add(path, f"must be a mapping, got {kind(value)}")
            return None
        known: Raw = {}
        for key, item in value.items():
            if isinstance(key, str) and key in allowed:
                if item is not None:
                    known[key] = item
                continue
            name = str(key)
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(allowed)
            self.add(join_path(path, name), f"unknown key ({hint})")
        return known

    def string(self, raw: Raw, key: str, path: str, *, required: bool = False) -> str | None:
        # Never quotes the value: this also reads passwords.
        where = join_path(path, key)
        value = raw.get(key)
        if value is None:
            if required:
                self.add(where, "required")
            return None
        if not isinstance(value, str):
            self.add(where, f"must be a string, got {kind(value)}")
            return None
        if not value.strip():
            self.add(where, "must not be empty")
            return None
        return value

    def boolean(self, raw: Raw, key: str, path: str) -> bool | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.add(join_path(path, key), f"must be true or false, got {kind(value)}")
            return None
        return value

    def string_list(self, raw: Raw, key: str, path: str) -> tuple[str, ...] | None:
        where = join_path(path, key)
        value = raw.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.add(where, f"must be a list of strings, got {kind(value)}")
            return None
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.add(f"{where}[{index}]", f"must be a string, got {kind(item)}")
            elif not item:
                self.add(f"{where}[{index}]", "must not be empty")
            else:
                items.append(item)
        return tuple(items) if len(items) == len(value) else None

    def file_path(self, value: str) -> str:
        # Relative paths are read beside the config file, as Prometheus does, so a config
        # directory can be moved as a whole and the daemon's working directory does not matter.
        if self.base_dir is None or os.path.isabs(value):
            return value
        return os.path.join(self.base_dir, value)

    def read_file(self, canonical: str, name: str) -> bytes | None:
        """The contents of a file the configuration names, or None (reported) if unreadable."""
        try:
            with open(name, "rb") as handle:
                return handle.read()
        except OSError as exc:
            self.add(canonical, f"cannot read {name}: {exc.strerror or exc}")
            return None


def config_dir(path: str) -> str:
    """The directory that relative paths in the config file at ``path`` are read from."""
    return os.path.dirname(os.path.abspath(path))


class StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key repeated in one mapping is an error, not "last one wins"."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key; the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return dict(super().construct_mapping(node, deep=deep))


def yaml_problem(exc: yaml.YAMLError) -> str:
    # str(exc) would quote the offending source line, which may hold a password.
    if isinstance(exc, yaml.MarkedYAMLError):

        def at(mark: yaml.Mark | None) -> str:
            return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""

        text = f"invalid YAML{at(exc.problem_mark)}: {exc.problem or 'syntax error'}"
        if exc.context:
            text += f" ({exc.context}{at(exc.context_mark)})"
        return text
    if isinstance(exc, yaml.reader.ReaderError):
        return f"invalid YAML at character {exc.position}: {exc.reason}"
    return "invalid YAML"


def read_yaml(path: str | os.PathLike[str]) -> object:
    """The parsed contents of a YAML file (None if empty); ConfigError if it cannot be read."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}: not valid UTF-8 (byte {exc.start})"]) from None
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError([f"{name}: {yaml_problem(exc)}"]) from None
