"""The contestants of the in-memory table, each run alone in a fresh process.

``python -m bench.contestants NAME FILE`` reads FILE (an answer), measures the RSS once the
imports are done and the answer is in memory, runs contestant NAME over those bytes and
prints one JSON line per row it measured: seconds, peak RSS growth (KiB) and the sessions it
counted, which the caller checks against the other contestants.

The peers find the fields their own way and then aggregate exactly as the exporter does
(``bench.ours.record`` and ``bench.ours.aggregate``), so only the reading differs.
"""

from __future__ import annotations

import io
import json
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from bench import memory, ours
from bench.answers import TAKEN_AT
from exporter.parse import Entry

_TAKEN_AT = TAKEN_AT.timestamp()
_NS = "{http://www.veeam.com/ent/v1.0}"


@dataclass(frozen=True)
class Row:
    row: str
    seconds: float
    rss_kib: int
    sessions: int


def _timed(row: str, run: Callable[[], int], baseline_kib: int) -> Row:
    started = time.perf_counter()
    sessions = run()
    seconds = time.perf_counter() - started
    return Row(row, seconds, max(0, memory.peak_kib() - baseline_kib), sessions)


# --- the floors -------------------------------------------------------------------------------


def xml_floor(data: bytes) -> int:
    """Bare lxml iterparse, every element cleared at its end: reading the bytes, no more
    (nothing is counted, so -1: there is nothing to check)."""
    for _, element in etree.iterparse(io.BytesIO(data)):
        element.clear()
    return -1


def json_floor(data: bytes) -> int:
    document = json.loads(data)
    items = next(iter(document.values()))
    return len(items)


# --- the peers --------------------------------------------------------------------------------


def _dom_entries(root: ElementTree.Element) -> Iterator[Entry]:
    for item in root.iter(_NS + "Sessions"):
        result = item.find(_NS + "Result")
        yield ours.record(
            uid=item.get("UID"),
            session_type=item.findtext(_NS + "SessionType"),
            state=item.findtext(_NS + "State"),
            created=item.findtext(_NS + "CreationTimeUTC"),
            ended=item.findtext(_NS + "EndTimeUTC"),
            result=None if result is None else result.findtext(_NS + "Result"),
            message=None if result is None else result.findtext(_NS + "Message"),
            canceled=None if result is None else result.findtext(_NS + "IsCanceled"),
        )


def etree_dom(data: bytes) -> int:
    # The bench's own generated answer: trusted input.
    root = ElementTree.fromstring(data)  # noqa: S314
    return ours.sessions_in(
        ours.aggregate(_dom_entries(root), ours.new_ledger(), taken_at=_TAKEN_AT)
    )


def _dict_entries(items: list[dict[str, Any]]) -> Iterator[Entry]:
    for item in items:
        result = item.get("Result") or {}
        yield ours.record(
            uid=item.get("@UID"),
            session_type=item.get("SessionType"),
            state=item.get("State"),
            created=item.get("CreationTimeUTC"),
            ended=item.get("EndTimeUTC"),
            result=result.get("Result"),
            message=result.get("Message"),
            canceled=result.get("IsCanceled"),
        )


def xmltodict_dom(data: bytes) -> int:
    import xmltodict

    document = xmltodict.parse(data)
    items = document["SystemSessions"]["Sessions"]
    if isinstance(items, dict):  # a single session is not a list to xmltodict
        items = [items]
    return ours.sessions_in(
        ours.aggregate(_dict_entries(items), ours.new_ledger(), taken_at=_TAKEN_AT)
    )


# --- the contestants --------------------------------------------------------------------------


def _fmt(path: Path) -> ours.Format:
    return "xml" if path.name.startswith("xml") else "json"


def _single(row: str, run: Callable[[bytes], int]) -> Callable[[bytes, ours.Format], list[Row]]:
    def contestant(data: bytes, fmt: ours.Format) -> list[Row]:
        baseline = memory.settle()
        return [_timed(row, lambda: run(data), baseline)]

    return contestant


def _parse(data: bytes, fmt: ours.Format) -> list[Row]:
    baseline = memory.settle()
    return [_timed("parse", lambda: ours.parse_only(io.BytesIO(data), fmt), baseline)]


def _polls(data: bytes, fmt: ours.Format) -> list[Row]:
    """The baseline poll of a fresh ledger, then the same answer again: the steady poll,
    whose growth is measured from what the process holds after the first (the ledger)."""
    ledger = ours.new_ledger()

    def run() -> int:
        return ours.sessions_in(ours.poll(io.BytesIO(data), fmt, ledger, taken_at=_TAKEN_AT))

    first = _timed("baseline", run, memory.settle())
    second = _timed("steady", run, memory.settle())
    return [first, second]


CONTESTANTS: dict[str, Callable[[bytes, ours.Format], list[Row]]] = {
    "floor-xml": _single("floor", xml_floor),
    "floor-json": _single("floor", json_floor),
    "parse": _parse,
    "polls": _polls,
    "etree": _single("etree", etree_dom),
    "xmltodict": _single("xmltodict", xmltodict_dom),
}


def run(name: str, path: Path) -> list[Row]:
    contestant = CONTESTANTS[name]
    data = path.read_bytes()
    return contestant(data, _fmt(path))


def main(argv: list[str]) -> int:
    name, path = argv
    try:
        rows = run(name, Path(path))
    except ModuleNotFoundError as exc:
        # A peer from the bench extra that is not installed: said, not fatal.
        print(json.dumps({"missing": exc.name}))
        return 0
    for row in rows:
        print(json.dumps(asdict(row)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
