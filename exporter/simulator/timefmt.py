"""Timestamps the way Enterprise Manager writes them (.NET style)."""

from __future__ import annotations

from datetime import UTC, datetime

MAX_FRACTION_DIGITS = 7


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def truncate(value: datetime, digits: int) -> datetime:
    """Drop the fractional digits beyond `digits`, as a lower-precision database would."""
    if digits >= 6:
        return value
    step = 10 ** (6 - digits)
    return value.replace(microsecond=value.microsecond - value.microsecond % step)


def format_timestamp(value: datetime, digits: int, *, zulu: bool = True) -> str:
    """`2025-01-27T17:06:10.30038Z`: at most `digits` fractional digits, trailing zeros trimmed.

    .NET writes ticks (7 digits) and trims trailing zeros; Python has microseconds, so the
    seventh digit is always 0 and never appears.
    """
    utc = as_utc(value)
    text = utc.isoformat(timespec="seconds")[:19]
    fraction = f"{utc.microsecond:06d}0"[:digits].rstrip("0")
    if fraction:
        text += "." + fraction
    return text + ("Z" if zulu else "")


def name_stamp(value: datetime) -> str:
    """The creation time inside a session name: `yyyy-MM-dd HH:mm:ss.ffffff`."""
    return as_utc(value).isoformat(sep=" ", timespec="microseconds")[:26]
