"""Configuration keys, each declared once: on the dataclass field that holds its value.

A key is a field of a ``@settings`` dataclass made with :func:`key`: the field gives the name,
the type and the default; the :class:`Key` in its metadata gives how a value is checked (its
:class:`Kind`), the environment variable that sets it, and how ``--config.check`` shows it.
Everything else is derived from these fields: the allowed keys and the unknown-key
suggestions (:meth:`SchemaChecker.section`), the environment map (:func:`env_paths`,
:func:`env_raw`), the constructor call (``cls(**values)``) and the summary
(:func:`describe`). The same kinds run again in each dataclass's ``__post_init__``
(:func:`check_keys`), so no caller can build a value the configuration file could not hold.

Rules between keys (inheritance from the top level, "one of two keys") stay written by hand
next to the schema that has them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, dataclass_transform, overload

from exporter.durations import format_duration, parse_duration
from exporter.sizes import format_size, parse_size
from exporter.validation import FieldChecker, PathStyle, Raw, join_path, kind

T = TypeVar("T")
C = TypeVar("C")

_METADATA = "veeam_em_key"


class Invalid:
    """What a kind's ``read`` returns after reporting a problem."""


INVALID = Invalid()


class Kind(Generic[T]):
    """How one key's value is checked, read from a variable and shown.

    ``check`` is pure and raises ValueError with a message that never quotes a secret; it
    also runs on already-checked values (in ``__post_init__``), so it must be idempotent.
    """

    def check(self, value: object, minimum: float | None = None) -> T:
        raise NotImplementedError

    def read(self, checker: SchemaChecker, value: object, where: str) -> T | Invalid:
        """The checked value of a key found in a file; the problem reported, if any."""
        try:
            return self.check(value)
        except ValueError as exc:
            checker.add(where, str(exc))
            return INVALID

    def from_env(self, text: str) -> object:
        """The value a variable's text stands for, as YAML would have read it."""
        return text

    def show(self, value: T) -> str:
        return str(value)


class Text(Kind[str]):
    """A non-empty string; a secret one is never quoted nor shown."""

    def __init__(self, *, secret: bool = False) -> None:
        self.secret = secret

    def check(self, value: object, minimum: float | None = None) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {kind(value)}")
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def show(self, value: str) -> str:
        return "<secret>" if self.secret else value


class FilePath(Text):
    """A path; relative paths are read beside the configuration file."""

    def read(self, checker: SchemaChecker, value: object, where: str) -> str | Invalid:
        text = super().read(checker, value, where)
        return text if isinstance(text, Invalid) else checker.file_path(text)


class Choice(Text):
    """One word of a fixed list, in any case; the canonical spelling is kept."""

    def __init__(self, *choices: str) -> None:
        super().__init__()
        self.choices = choices

    def check(self, value: object, minimum: float | None = None) -> str:
        text = super().check(value)
        for choice in self.choices:
            if text.strip().lower() == choice.lower():
                return choice
        listed = ", ".join(self.choices[:-1]) + " or " + self.choices[-1]
        raise ValueError(f"must be {listed}, got {text!r}")


class Flag(Kind[bool]):
    _TRUE = ("true", "1", "yes")
    _FALSE = ("false", "0", "no")

    def check(self, value: object, minimum: float | None = None) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {kind(value)}")
        return value

    def from_env(self, text: str) -> object:
        word = text.strip().lower()
        if word in self._TRUE or word in self._FALSE:
            return word in self._TRUE
        raise ValueError(f"must be true or false (or 1/0, yes/no), got {word!r}")

    def show(self, value: bool) -> str:
        return str(value).lower()


class Duration(Kind[float]):
    """Seconds, written as a number or as ``90s``, ``5m``, ``1h30m``.

    ``minimum`` 0 means "greater than 0": a zero timeout or staleness is never meant.
    """

    def __init__(self, minimum: float = 0.0, maximum: float | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def check(self, value: object, minimum: float | None = None) -> float:
        floor = self.minimum if minimum is None else minimum
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"must be a duration such as 60s or 5m, got {kind(value)}")
        seconds = parse_duration(value)
        if floor == 0 and seconds == 0:
            raise ValueError("must be greater than 0")
        if seconds < floor:
            raise ValueError(f"must be at least {format_duration(floor)}, got {value}")
        if self.maximum is not None and seconds > self.maximum:
            raise ValueError(f"must be at most {format_duration(self.maximum)}, got {value}")
        return seconds

    def show(self, value: float) -> str:
        return format_duration(value)


class Count(Kind[int]):
    """A whole number, at least ``minimum`` (and at most ``maximum`` when given)."""

    def __init__(self, minimum: int = 0, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def check(self, value: object, minimum: float | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, got {kind(value)}")
        if value < self.minimum:
            raise ValueError(f"must be at least {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {self.maximum}, got {value}")
        return value

    def from_env(self, text: str) -> object:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"must be a whole number, got {text.strip()!r}") from None


class Size(Kind[int]):
    """Bytes, written as a number or as ``512KiB``, ``64MiB``, ``1GiB``; greater than 0."""

    def check(self, value: object, minimum: float | None = None) -> int:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError(f"must be a size such as 64MiB or 1GiB, got {kind(value)}")
        size = parse_size(value)
        if size == 0:
            raise ValueError("must be greater than 0")
        return size

    def show(self, value: int) -> str:
        return format_size(value)


class TextList(Kind[tuple[str, ...]]):
    def check(self, value: object, minimum: float | None = None) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError(f"must be a list of strings, got {kind(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise ValueError(f"[{index}] must be a non-empty string, got {kind(item)}")
        return tuple(value)

    def read(self, checker: SchemaChecker, value: object, where: str) -> tuple[str, ...] | Invalid:
        # Item by item, so that each bad item is reported with its own index.
        path, _, key = where.rpartition(".")
        items = checker.string_list({key: value}, key, path)
        return INVALID if items is None else items

    def show(self, value: tuple[str, ...]) -> str:
        return ", ".join(value)


class Section(Kind[C]):
    """A nested mapping whose keys are the fields of another ``@settings`` class.

    ``env=False`` keeps the section's variables out of this place: a section declared at the
    top level and again per server is set from the environment once, at the top level, and
    the server inherits it.
    """

    def __init__(self, cls: type[C], *, env: bool = True) -> None:
        self.cls = cls
        self.env = env

    def check(self, value: object, minimum: float | None = None) -> C:
        if not isinstance(value, self.cls):
            raise ValueError(f"must be a {self.cls.__name__}, got {type(value).__name__}")
        return value

    def read(self, checker: SchemaChecker, value: object, where: str) -> C | Invalid:
        values = checker.section(value, where, self.cls)
        if values is None:
            return INVALID
        return checker.build(self.cls, values, where)


@dataclass(frozen=True)
class Key:
    kind: Kind[Any]
    required: bool = False
    env: str | None = None
    # What --config.check shows when the key has no value (None or an empty list).
    blank: str = "(none)"
    # Appended to the shown value; gets the object that holds the key.
    note: Callable[[Any], str] | None = None


@overload
def key(
    kind: Kind[Any],
    *,
    default: T,
    env: str | None = ...,
    blank: str = ...,
    note: Callable[[Any], str] | None = ...,
) -> T: ...
@overload
def key(
    kind: Kind[Any],
    *,
    env: str | None = ...,
    blank: str = ...,
    note: Callable[[Any], str] | None = ...,
) -> Any: ...
def key(
    kind: Kind[Any],
    *,
    default: Any = dataclasses.MISSING,
    env: str | None = None,
    blank: str = "(none)",
    note: Callable[[Any], str] | None = None,
) -> Any:
    """A configuration key; without a default it is required."""
    required = default is dataclasses.MISSING
    secret = isinstance(kind, Text) and kind.secret
    declared = Key(kind, required=required, env=env, blank=blank, note=note)
    return dataclasses.field(
        default=default,
        repr=not secret,
        metadata={_METADATA: declared},
    )


@dataclass_transform(
    frozen_default=True, kw_only_default=True, field_specifiers=(key, dataclasses.field)
)
def settings(cls: type[C]) -> type[C]:
    """A frozen, keyword-only dataclass whose ``key`` fields are configuration keys."""
    return dataclasses.dataclass(frozen=True, kw_only=True)(cls)


def keys(cls: type[object]) -> dict[str, Key]:
    """The keys of a ``@settings`` class by name, in declaration order."""
    found = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        declared = item.metadata.get(_METADATA)
        if isinstance(declared, Key):
            found[item.name] = declared
    return found


def defaults(cls: type[object]) -> dict[str, object]:
    """The default of every key of ``cls`` that has one."""
    found: dict[str, object] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if item.name not in keys(cls):
            continue
        if item.default is not dataclasses.MISSING:
            found[item.name] = item.default
    return found


def check_keys(obj: object, minimums: Mapping[str, float] | None = None) -> None:
    """Hold ``obj`` to its keys' rules: ValueError names the first key that breaks one.

    Values are also canonicalised (a format in upper case, for instance), as the file reader
    does. ``minimums`` lowers a duration's floor for one explicit caller.
    """
    for name, declared in keys(type(obj)).items():
        value = getattr(obj, name)
        if value is None and not declared.required:
            continue
        try:
            checked = declared.kind.check(value, (minimums or {}).get(name))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if checked is not value and checked != value:
            object.__setattr__(obj, name, checked)


def describe(obj: object, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, shown value) for every key of ``obj``, secrets shown as ``<secret>``."""
    for name, declared in keys(type(obj)).items():
        value = getattr(obj, name)
        if isinstance(declared.kind, Section):
            yield from describe(value, f"{prefix}{name}.")
            continue
        shown = declared.blank if value is None or value == () else declared.kind.show(value)
        if declared.note is not None:
            shown += declared.note(obj)
        yield f"{prefix}{name}", shown


def env_paths(cls: type[object], path: str = "") -> dict[str, str]:
    """Canonical key path -> the environment variable that sets it."""
    found: dict[str, str] = {}
    for name, declared in keys(cls).items():
        where = join_path(path, name)
        if declared.env is not None:
            found[where] = declared.env
        if isinstance(declared.kind, Section) and declared.kind.env:
            found.update(env_paths(declared.kind.cls, where))
    return found


def env_raw(cls: type[object], environ: Mapping[str, str], problems: list[str]) -> Raw:
    """The keys of ``cls`` set in the environment, shaped as a YAML file would hold them.

    An empty variable counts as unset, as with ``VAR=`` in a compose file.
    """
    raw: Raw = {}
    for name, declared in keys(cls).items():
        if isinstance(declared.kind, Section):
            nested = env_raw(declared.kind.cls, environ, problems) if declared.kind.env else {}
            if nested:
                raw[name] = nested
            continue
        if declared.env is None or not environ.get(declared.env, "").strip():
            continue
        try:
            raw[name] = declared.kind.from_env(environ[declared.env])
        except ValueError as exc:
            problems.append(f"{declared.env}: {exc}")
    return raw


class SchemaChecker(FieldChecker):
    """Reads whole sections by their declared keys, on top of the shared field checks."""

    def __init__(self, paths: PathStyle, base_dir: str | None) -> None:
        super().__init__(paths, base_dir)
        # Paths of keys that were present but wrong, or required and missing.
        self.bad: set[str] = set()

    def section(
        self,
        raw: object,
        path: str,
        cls: type[object],
        *,
        exclude: Sequence[str] = (),
        also: Sequence[str] = (),
    ) -> dict[str, object] | None:
        """The valid values of the keys present, or None when ``raw`` is not a mapping.

        A key that is present but wrong, or required and missing, is reported and left out,
        and its path is added to ``self.bad`` so that rules between keys can skip it.
        ``exclude`` names keys the caller reads itself, ``also`` keys that are not fields but
        that the caller handles (to refuse them with a better message than "unknown key").
        """
        declared = keys(cls)
        entry = self.mapping(raw, path, [*declared, *also])
        if entry is None:
            return None
        values: dict[str, object] = {}
        for name, spec in declared.items():
            if name in exclude:
                continue
            where = join_path(path, name)
            if name not in entry:
                if spec.required:
                    self.add(where, "required")
                    self.bad.add(where)
                continue
            value = spec.kind.read(self, entry[name], where)
            if isinstance(value, Invalid):
                self.bad.add(where)
            else:
                values[name] = value
        return values

    def build(self, cls: type[C], values: Mapping[str, object], path: str) -> C | Invalid:
        """``cls(**values)``; a broken invariant is reported at ``path``."""
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            self.add(path, str(exc))
            return INVALID
