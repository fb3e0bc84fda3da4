"""Byte sizes as configuration values: a plain number of bytes or ``512KiB``, ``64MiB``, ``1GiB``."""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}
_SIZE_RE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|TiB)?")
_SIZE_HINT = "use a number of bytes or a size such as 512KiB, 64MiB, 1GiB"


def parse_size(value: object) -> int:
    """Bytes from ``1GiB`` (powers of 1024, as the suffixes say) or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}: a boolean is not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: must not be negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"invalid size of type {type(value).__name__}: {_SIZE_HINT}")
    match = _SIZE_RE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"invalid size {value!r}: {_SIZE_HINT}")
    return int(match.group(1)) * _UNITS[match.group(2) or ""]


def format_size(size: int) -> str:
    """The inverse of parse_size for display: ``1073741824`` -> ``1GiB``."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return f"{size}B"
