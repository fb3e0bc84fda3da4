"""Prometheus-style durations (``90s``, ``5m``, ``1h30m``) as configuration values."""

from __future__ import annotations

import math
import re

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
