"""parse_timestamp's fast path and the general reader agree on every form an EM may write:
where the fast path reads a value it is the general reader's, to the bit, and it reads every
common form itself; every other form (offsets, blanks, "no time", errors) it hands over."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from exporter import parse

# What the general reader makes of a text: a value, "no time" (None), or "error".
Verdict = float | None | str
_GENERAL = parse.general_timestamp


def general(text: str) -> Verdict:
    try:
        return _GENERAL(text)
    except ValueError:
        return "error"


@pytest.fixture
def assert_agree(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], float | None]:
    """Reads a text with parse_timestamp, watching whether it handed the text to the general
    reader; checks the outcome against the general reader's. Gives the fast path's value, or
    None when it handed the text over."""
    handed: list[str] = []

    def watched(text: str) -> float | None:
        handed.append(text)
        return _GENERAL(text)

    monkeypatch.setattr(parse, "general_timestamp", watched)

    def check(text: str) -> float | None:
        handed.clear()
        expected = general(text)
        value: Verdict
        if expected == "error":
            with pytest.raises(ValueError, match="not a timestamp"):
                parse.parse_timestamp(text)
            value = "error"
        else:
            value = parse.parse_timestamp(text)
        assert value == expected, (text, value, expected)  # the same float, not close to it
        if handed:
            assert handed == [text]
            return None
        assert isinstance(value, float), (text, value)
        return value

    return check


# (text, the general reader's verdict, whether the fast reader reads it itself)
TABLE: list[tuple[str, Verdict, bool]] = [
    ("2026-11-01T10:00:00Z", 1793527200.0, True),
    ("2026-11-01T10:00:00", 1793527200.0, True),  # no zone: UTC
    ("2026-11-01 10:00:00Z", 1793527200.0, True),  # a space instead of T
    ("2026-11-01 10:00:00", 1793527200.0, True),
    ("2026-11-01T10:00:00.1Z", 1793527200.1, True),
    ("2026-11-01T10:00:00.12Z", 1793527200.12, True),
    ("2026-11-01T10:00:00.123Z", 1793527200.123, True),
    ("2026-11-01T10:00:00.1234Z", 1793527200.1234, True),
    ("2026-11-01T10:00:00.12345Z", 1793527200.12345, True),
    ("2026-11-01T10:00:00.123456Z", 1793527200.123456, True),
    ("2026-11-01T10:00:00.1234567Z", 1793527200.1234567, True),
    ("2026-11-01T10:00:00.1234567", 1793527200.1234567, True),
    ("2026-11-01T10:00:00.0000000Z", 1793527200.0, True),
    ("2024-02-29T23:59:59.9999999Z", 1709251199.9999999, True),  # a leap day
    ("1970-01-01T00:00:00Z", 0.0, True),
    ("1969-12-31T23:59:59Z", -1.0, True),
    ("2026-11-01T12:00:00+02:00", 1793527200.0, False),
    ("2026-11-01T05:00:00-05:00", 1793527200.0, False),
    ("2026-11-01T12:00:00+0200", 1793527200.0, False),
    ("2026-11-01T05:30:00-0430", 1793527200.0, False),
    ("2026-11-01T12:00:00.5+02:00", 1793527200.5, False),
    ("  2026-11-01T10:00:00Z\n", 1793527200.0, False),  # blanks around it
    ("", None, False),
    ("   ", None, False),
    ("0001-01-01T00:00:00", None, False),  # .NET's DateTime.MinValue
    ("0001-01-01T00:00:00Z", None, False),
    ("0001-12-31T23:59:59.9999999Z", None, False),
    ("1753-01-01T00:00:00", None, False),  # SQL Server's smallest datetime
    ("1753-01-01T00:00:00.000Z", None, False),
    ("1753-01-01 12:30:00+01:00", None, False),
    ("1753-01-02T00:00:00Z", -6847718400.0, True),  # the day after is an ordinary day
    ("2026-13-01T10:00:00Z", "error", False),  # month 13
    ("2026-02-30T10:00:00Z", "error", False),  # 30 February
    ("2025-02-29T10:00:00Z", "error", False),  # not a leap year
    ("2026-00-10T10:00:00Z", "error", False),
    ("2026-11-00T10:00:00Z", "error", False),
    ("2026-11-01T24:00:00Z", "error", False),
    ("2026-11-01T23:60:00Z", "error", False),
    ("2026-11-01T23:59:60Z", "error", False),
    ("2026-11-01T10:00:00.12345678Z", "error", False),  # 8 fractional digits
    ("2026-11-01T10:00:00.Z", "error", False),
    ("2026-11-01T10:00:00.", "error", False),
    ("2026-11-01T10:00:00ZZ", "error", False),
    ("2026-11-01T10:00:00z", "error", False),
    ("2026-11-01t10:00:00Z", "error", False),
    ("2026-11-01T10:00", "error", False),
    ("2026-11-01", "error", False),
    ("2026-11-01T1:00:00Z", "error", False),
    ("2026-11-01T+1:00:00Z", "error", False),
    ("2026-11-01T 1:00:00Z", "error", False),
    ("2026-11-01T10:00:0 Z", "error", False),
    ("2026-11-01T10:00:00.+1Z", "error", False),
    ("2026-11-01T10:00:00.1_2Z", "error", False),
    ("2026-11-01T10:00:00.\u00b2Z", "error", False),  # a superscript two is a digit to Python
    ("2026-11-01T10:00:00.\u0661Z", "error", False),  # an Arabic-Indic one
    ("\u0662026-11-01T10:00:00Z", "error", False),
    ("2026-11-01T10:00:00+02", "error", False),
    ("2026-11-01T10:00:00+2:00", "error", False),
    ("+2026-11-01T10:00:00Z", "error", False),
    ("20261101T100000Z", "error", False),
    ("yesterday", "error", False),
]


@pytest.mark.parametrize(("text", "verdict", "fast"), TABLE)
def test_fast_and_general_agree(
    text: str, verdict: Verdict, fast: bool, assert_agree: Callable[[str], float | None]
) -> None:
    expected = general(text)
    if isinstance(verdict, float):
        assert expected == pytest.approx(verdict, abs=1e-6)
    else:
        assert expected == verdict
    assert (assert_agree(text) is not None) == fast


def _pieces(rng: random.Random) -> str:
    """A timestamp whose every part is most often ordinary and sometimes odd."""

    def part(ordinary: str, *odd: str) -> str:
        return ordinary if rng.random() < 0.93 else rng.choice(odd)

    year = part(f"{rng.randint(1900, 2100)}", "0001", "1753", "1970", "9999", "2O26", "226")
    month = part(f"{rng.randint(1, 12):02d}", "00", "13", "1", "99")
    day = part(f"{rng.randint(1, 31):02d}", "00", "32", "1", "29", "30")
    sep = part(rng.choice("T "), "t", "_", "")
    hour = part(f"{rng.randint(0, 23):02d}", "24", "9", "+1", " 1")
    minute = part(f"{rng.randint(0, 59):02d}", "60", "5", "99")
    second = part(f"{rng.randint(0, 59):02d}", "60", "5", "-1")
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 7)))
    fraction = part(rng.choice(["", "." + digits]), ".", ".12345678", ".\u00b2", "5")
    zone = part(rng.choice(["", "Z"]), "+02:00", "-05:30", "+0200", "-0000", "z", "+2", "ZZ")
    pad = part("", " ", "\n", "\t")
    return f"{pad}{year}-{month}-{day}{sep}{hour}:{minute}:{second}{fraction}{zone}{pad}"


def test_fast_and_general_agree_on_a_generated_sweep(
    assert_agree: Callable[[str], float | None],
) -> None:
    rng = random.Random(20261101)
    read_fast = 0
    for _ in range(20_000):
        if assert_agree(_pieces(rng)) is not None:
            read_fast += 1
    assert read_fast > 5_000  # the sweep reaches the fast reader, not only the general one


def test_fast_path_reads_every_ordinary_second_and_fraction_length(
    assert_agree: Callable[[str], float | None],
) -> None:
    # Every hour, minute and second of a day in both separators, each fraction length.
    for hour, minute in itertools.product(range(24), range(60)):
        for second in (0, 29, 59):
            for sep, fraction in itertools.product("T ", ["", ".5", ".1234567", ".000001"]):
                text = f"2026-03-29{sep}{hour:02d}:{minute:02d}:{second:02d}{fraction}Z"
                assert assert_agree(text) is not None, text
