"""The answers the bench reads: what the simulated EM would send for N sessions.

The bytes come from the simulator's own renderers, so they have the shape and size of a real
answer (declaration, namespaces, indentation, links); the sessions are a fixed
mix, so two runs read the same bytes. Every session is inside the 30-day window as of
``TAKEN_AT``: the ledger remembers every finished one, as it would on a real baseline poll.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from exporter.simulator.model import FAILED, IN_PROGRESS, SUCCESS, WARNING, SimSession
from exporter.simulator.render import Renderer

Kind = Literal["xml", "json-v12", "json-v13"]
KINDS: Final[tuple[Kind, ...]] = ("xml", "json-v12", "json-v13")

TAKEN_AT: Final = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
_WINDOW: Final = timedelta(days=29, hours=23)
_BASE: Final = "https://em01.corp.local:9398/api"
# Roughly what an EM's system sessions are made of: collect jobs every few minutes per backup
# server, the rest a few a day.
_TYPES: Final = (
    *("CollectJob",) * 85,
    *("CatalogReplicationJob",) * 7,
    *("CatalogCrawlJob",) * 5,
    *("DatabaseMaintenance",) * 3,
)
_SHOWN: Final = {
    "CollectJob": "Collect Job",
    "CatalogReplicationJob": "Catalog Replication Job",
    "CatalogCrawlJob": "Catalog Crawl Job",
    "DatabaseMaintenance": "Database Maintenance",
}
_FAILURES: Final = (
    "Failed to collect data from backup server vbr02.corp.local: The RPC server is unavailable.",
    "Failed to collect data from backup server vbr01.corp.local: Access is denied.",
    "Catalog replication failed: the operation has timed out.",
)
_WARNING: Final = "Backup server vbr03.corp.local responded slowly; data may be incomplete."
RUNNING: Final = 5  # the newest sessions of the answer are still running


def sessions(n: int) -> list[SimSession]:
    start = TAKEN_AT - _WINDOW
    step = _WINDOW / max(1, n)
    out = []
    for i in range(n):
        session_type = _TYPES[(i * 37) % len(_TYPES)]
        created = start + step * i + timedelta(microseconds=(i * 7919) % 1_000_000)
        ended: datetime | None = created + timedelta(seconds=8 + (i * 13) % 400)
        message = ""
        canceled = False
        if i >= n - RUNNING:
            state, ended = IN_PROGRESS, None
        elif i % 67 == 0:
            state, message = FAILED, _FAILURES[i % len(_FAILURES)]
            canceled = i % 5 == 0
        elif i % 33 == 1:
            state, message = WARNING, _WARNING
        else:
            state = SUCCESS
        out.append(
            SimSession(
                id=f"{i:08x}-1d2c-4b5a-9e8f-{(i * 2654435761) % 16**12:012x}",
                session_type=session_type,
                name=f"{_SHOWN[session_type]} @{created:%Y-%m-%d %H:%M:%S.%f}",
                created=created,
                ended=ended,
                state=state,
                result=state,
                message=message,
                canceled=canceled,
            )
        )
    return out


def render(kind: Kind, items: Sequence[SimSession]) -> bytes:
    renderer = Renderer(
        base=_BASE, json=kind != "xml", camel=kind == "json-v13", bom=False, digits=6
    )
    return renderer.sessions(items)


def answer(kind: Kind, n: int) -> bytes:
    return render(kind, sessions(n))


def path_for(directory: Path, kind: Kind, n: int, *, gz: bool = False) -> Path:
    return directory / f"{kind}-{n}.{'gz' if gz else 'body'}"


def write_all(directory: Path, sizes: Sequence[int], *, gzip_level: int = 6) -> None:
    """Every answer of every size, plus the gzip-compressed XML answer the loopback EM sends
    (at zlib's default level, as a web server compresses on the fly)."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in sizes:
        items = sessions(n)
        for kind in KINDS:
            body = render(kind, items)
            path_for(directory, kind, n).write_bytes(body)
            if kind == "xml":
                compressed = gzip.compress(body, compresslevel=gzip_level, mtime=0)
                path_for(directory, kind, n, gz=True).write_bytes(compressed)


def _digest() -> str:
    """What the answers are made from: a different digest makes kept answers stale."""
    here = Path(__file__).resolve()
    simulator = here.parents[1] / "exporter" / "simulator"
    sources = [here, *(simulator / f"{m}.py" for m in _RENDER_MODULES)]
    return hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]


_RENDER_MODULES: Final = ("render", "xml_render", "json_render", "links", "timefmt", "model")


def ensure(directory: Path, sizes: Sequence[int]) -> None:
    """Write the answers of the sizes not already in ``directory`` from the same sources."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / "STAMP"
    digest = _digest()
    if not stamp.exists() or stamp.read_text(encoding="ascii") != digest:
        for old in directory.glob("*-*.*"):
            old.unlink()
        stamp.write_text(digest, encoding="ascii")
    missing = [
        n
        for n in sizes
        if not all(path_for(directory, kind, n).exists() for kind in KINDS)
        or not path_for(directory, "xml", n, gz=True).exists()
    ]
    write_all(directory, missing)


def main(argv: list[str]) -> int:
    """``python -m bench.answers DIR SIZE...``: run apart, so that the bench's own process
    never holds an answer (a child's peak RSS can start from its parent's)."""
    ensure(Path(argv[0]), [int(n) for n in argv[1:]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
