"""A poll of the backup job-session feed: 1,000 jobs, 60,000 sessions in its window.

``python -m bench.jobs serve KIND [JOBS]`` runs the simulated EM in its own process (so that
serving costs the measured process nothing): 1,000 jobs (or JOBS) on two backup servers, 30
runs a day each, two days of history, frozen at ``TAKEN_AT``; it prints its URL and serves
until stdin closes. KIND ``xml`` or ``json`` (the v13 EM: camelCase keys, its links and names).

``python -m bench.jobs NAME URL KIND DIR`` runs one contestant against it and prints JSON rows:

- ``record``: the requests of one poll, their answers written to DIR (not measured); prints
  how many requests, bytes and sessions they were.
- ``http``: the feed's whole poll as the poller runs it (the window query page by page, the
  running query, the vanished-session lookups) through the exporter's EM client: the bootstrap
  poll of a fresh feed, then the steady poll (the same answers again). The simulator renders
  and filters every page in Python, so this row is mostly the simulator's time.
- ``replay``: the same two polls with the answers recorded by ``record`` served from memory:
  what the exporter itself spends, parsing and reducing.

Each row's peak RSS growth is measured from what the process holds before that poll (the
recorded answers, for ``replay``): the steady poll's growth is on top of the first one's state.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Literal, TypeVar

from bench import memory
from bench.contestants import Row

T = TypeVar("T")
Kind = Literal["xml", "json"]
KINDS: Final[tuple[Kind, ...]] = ("xml", "json")

TAKEN_AT: Final = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
JOBS: Final = 1_000
RUNS_PER_DAY: Final = 30.0
HISTORY_DAYS: Final = 2.0
# Enough pages for the whole window: 60,000 sessions at the largest page size the EM takes.
PAGE_SIZE: Final = 1_000
MAX_PAGES: Final = 100
USERNAME: Final = "CORP\\bench"
PASSWORD: Final = "bench-Pa55word"  # noqa: S105 - the simulator's own, on loopback


@dataclass(frozen=True)
class Answers:
    """What one poll asked for, in order, and what it got: (path, body) pairs."""

    pages: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        return sum(len(body) for _, body in self.pages)


def serve(kind: Kind, jobs: int = JOBS) -> None:
    from exporter.simulator import SimulatedEM, SimulatorSettings

    settings = SimulatorSettings(
        port=0,
        live=False,
        jobs=jobs,
        job_runs_per_day=RUNS_PER_DAY,
        history_days=HISTORY_DAYS,
        username=USERNAME,
        password=PASSWORD,
        em_version="13" if kind == "json" else "12",
        json_casing="camel" if kind == "json" else "pascal",
    )
    sim = SimulatedEM(settings, clock=lambda: TAKEN_AT)
    sim.start()
    try:
        print(sim.url, flush=True)
        sys.stdin.read()
    finally:
        sim.stop()


def _server(url: str, kind: Kind) -> Any:
    from exporter.config import JobSessionsConfig, ServerConfig

    return ServerConfig(
        name="bench",
        url=url,
        username=USERNAME,
        password=PASSWORD,
        format=kind,
        timeout=600.0,
        job_sessions=JobSessionsConfig(page_size=PAGE_SIZE, max_pages=MAX_PAGES),
    )


class _Recording:
    """A feed source that passes each request to the client and keeps its answer."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.pages: list[tuple[str, bytes]] = []

    def get(
        self, path: str, consume: Callable[[IO[bytes]], T], *, forbidden_relogon: bool = True
    ) -> T:
        body = self._client.get(path, lambda stream: stream.read(), forbidden_relogon=False)
        self.pages.append((path, body))
        return consume(io.BytesIO(body))


class _Replay:
    """A feed source that answers each path with what was recorded for it."""

    def __init__(self, answers: Answers) -> None:
        self._bodies = dict(answers.pages)

    def get(
        self, path: str, consume: Callable[[IO[bytes]], T], *, forbidden_relogon: bool = True
    ) -> T:
        return consume(io.BytesIO(self._bodies[path]))


def _polls(server: Any, source: Any, rows: tuple[str, str]) -> list[Row]:
    from exporter.jobsessions.feed import JobSessionsFeed

    feed = JobSessionsFeed(server)
    now = TAKEN_AT.timestamp()
    out = []
    for row in rows:
        baseline = memory.settle()
        started = time.perf_counter()
        feed.poll(source, now)(0.0)
        seconds = time.perf_counter() - started
        sessions = len(feed.ledger)
        out.append(Row(row, seconds, max(0, memory.peak_kib() - baseline), sessions))
    return out


def _answers_file(directory: Path, kind: Kind) -> Path:
    return directory / f"jobs-{kind}.pickle"


def record(url: str, kind: Kind, directory: Path) -> dict[str, int]:
    """The requests and answers of a bootstrap poll and a steady one, written for ``replay``;
    the figures of the bootstrap poll's."""
    from exporter.emclient import EMClient
    from exporter.jobsessions.feed import JobSessionsFeed

    server = _server(url, kind)
    with EMClient(server) as client:
        recording = _Recording(client)
        feed = JobSessionsFeed(server)
        # The bootstrap poll, then a steady one: its window is narrower, its paths others.
        feed.poll(recording, TAKEN_AT.timestamp())(0.0)
        first = Answers(list(recording.pages))
        sessions = len(feed.ledger)
        feed.poll(recording, TAKEN_AT.timestamp())(0.0)
    answers = Answers(recording.pages)
    # Plain pairs: a class of this module would be __main__'s when it runs as a script.
    _answers_file(directory, kind).write_bytes(pickle.dumps(answers.pages))
    return {"requests": len(first.pages), "bytes": first.size, "sessions": sessions}


def run(name: str, url: str, kind: Kind, directory: Path) -> list[Row]:
    from exporter.emclient import EMClient

    server = _server(url, kind)
    if name == "replay":
        # The bench's own file, written by its own record step.
        answers = Answers(pickle.loads(_answers_file(directory, kind).read_bytes()))  # noqa: S301
        return _polls(server, _Replay(answers), ("replay-baseline", "replay-steady"))
    with EMClient(server) as client:
        # The logon first, so that the polls are measured with a token, as most are.
        client.fetch_sessions(lambda stream: stream.read(1))
        return _polls(server, client, ("http-baseline", "http-steady"))


def main(argv: list[str]) -> int:
    if argv[0] == "serve":
        serve(argv[1], *map(int, argv[2:]))  # type: ignore[arg-type]
        return 0
    name, url, kind, directory = argv
    if name == "record":
        print(json.dumps(record(url, kind, Path(directory))))  # type: ignore[arg-type]
        return 0
    for row in run(name, url, kind, Path(directory)):  # type: ignore[arg-type]
        print(json.dumps(asdict(row)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
