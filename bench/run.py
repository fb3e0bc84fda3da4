"""``python -m bench`` (``make bench``): every measurement of docs/performance.md in one run.

Each contestant runs in a fresh process of its own (bench.contestants, bench.loopback,
bench.render), so that its peak RSS is its own; repetitions are interleaved across the
contestants, so that a busy moment of the machine hurts them alike, and the best time of
each is kept. Progress goes to stderr, the tables and the verdicts to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import answers, jobs, report
from bench.answers import KINDS, Kind

ROOT = Path(__file__).resolve().parents[1]
FULL_SIZES = (1_000, 10_000, 100_000, 300_000)
QUICK_SIZES = (1_000, 10_000)
TARGET_SIZE = 100_000
LARGE = 300_000  # from here on, fewer repetitions: the peers alone take minutes
PEERS = ("etree", "xmltodict")


class BenchError(Exception):
    pass


@dataclass
class Best:
    """The best time of a contestant's runs, and the largest peak RSS growth of any."""

    seconds: float = math.inf
    rss_kib: int = 0
    runs: int = 0
    sessions: set[int] = field(default_factory=set)

    def add(self, row: dict[str, Any]) -> None:
        self.seconds = min(self.seconds, float(row["seconds"]))
        self.rss_kib = max(self.rss_kib, int(row["rss_kib"]))
        self.runs += 1
        self.sessions.add(int(row["sessions"]))


Results = dict[tuple[str, int, str], Best]


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _child(module: str, *args: str, timeout: float = 3600) -> list[dict[str, Any]]:
    done = subprocess.run(  # noqa: S603 - our own interpreter and modules
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"{module} {' '.join(args)} failed: {done.stderr.strip()[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _contestants(kind: Kind) -> tuple[str, ...]:
    if kind == "xml":
        return ("floor-xml", "parse", "polls", *PEERS)
    return ("floor-json", "parse", "polls")


def _repeats(args: argparse.Namespace, n: int, contestant: str) -> int:
    """Fewer runs where one takes long: the peers from 100,000 sessions on, everyone at
    300,000 (the table says how many runs each figure is the best of)."""
    if n >= LARGE:
        return 1 if contestant in PEERS else int(min(args.repeat, args.large_repeat))
    if n >= TARGET_SIZE and contestant in PEERS:
        return int(min(args.repeat, 3))
    return int(args.repeat)


def measure_memory_table(
    args: argparse.Namespace, workdir: Path, results: Results, missing: set[str]
) -> None:
    for n in args.sizes:
        plan = [(kind, c) for kind in KINDS for c in _contestants(kind)]
        most = max(_repeats(args, n, c) for _, c in plan)
        for rep in range(most):
            for kind, contestant in plan:
                if rep >= _repeats(args, n, contestant):
                    continue
                _progress(
                    f"  {kind} {n:,} {contestant} ({rep + 1}/{_repeats(args, n, contestant)})"
                )
                path = answers.path_for(workdir, kind, n)
                for row in _child("bench.contestants", contestant, str(path)):
                    if "missing" in row:
                        missing.add(contestant)
                        continue
                    results.setdefault((kind, n, row["row"]), Best()).add(row)


@contextmanager
def _server(what: str, module: str, *args: str) -> Iterator[str]:
    """A server of the bench in its own process, serving until its stdin closes; yields the
    first line it prints (its port or URL)."""
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", module, "serve", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        if not line:
            raise BenchError(f"{what} did not start")
        yield line
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def measure_loopback(args: argparse.Namespace, workdir: Path, results: Results) -> None:
    drain_size = max((n for n in args.sizes if n <= TARGET_SIZE), default=min(args.sizes))
    for n in args.sizes:
        reps = _repeats(args, n, "client")
        path = answers.path_for(workdir, "xml", n, gz=True)
        with _server("the loopback EM", "bench.loopback", str(path)) as port:
            names = ["plain", "client"]
            if n == drain_size:
                names += ["drain-plain", "drain-client", "drain-buffered"]
            for rep in range(reps):
                for name in names:
                    _progress(f"  loopback {n:,} {name} ({rep + 1}/{reps})")
                    for row in _child("bench.loopback", name, str(port)):
                        section = "drain" if name.startswith("drain") else "loopback"
                        results.setdefault((section, n, row["row"]), Best()).add(row)


def measure_render(args: argparse.Namespace, workdir: Path) -> dict[int, dict[str, float]]:
    """The smallest size against the largest up to 100,000, in one process, taking turns."""
    sizes = sorted(
        {min(args.sizes), max((n for n in args.sizes if n <= TARGET_SIZE), default=min(args.sizes))}
    )
    _progress(f"  render {', '.join(f'{n:,}' for n in sizes)}")
    files = [f"{n}={answers.path_for(workdir, 'xml', n)}" for n in sizes]
    (out,) = _child("bench.render", str(args.render_rounds), *files)
    return {int(n): {k: float(v) for k, v in figures.items()} for n, figures in out.items()}


INSTRUCTION_SIZE = 10_000  # callgrind runs some 50 times slower than the CPU


def measure_instructions(
    args: argparse.Namespace, workdir: Path
) -> tuple[int, dict[Kind, tuple[int, int]]]:
    """(the size measured, kind -> instructions of the baseline and of the steady poll)."""
    from bench import instructions

    n = max((s for s in args.sizes if s <= INSTRUCTION_SIZE), default=min(args.sizes))
    if not args.instructions or not instructions.available():
        return n, {}
    out: dict[Kind, tuple[int, int]] = {}
    for kind in KINDS:
        _progress(f"  instructions {kind} {n:,} (callgrind)")
        out[kind] = instructions.measure(answers.path_for(workdir, kind, n), ROOT)
    return n, out


def measure_jobs(args: argparse.Namespace, workdir: Path) -> dict[str, report.JobFigures]:
    """The job-session feed's poll, against the simulator and replayed from memory."""
    out: dict[str, report.JobFigures] = {}
    for kind in jobs.KINDS:
        with _server("the job-session bench's EM", "bench.jobs", kind, str(args.jobs)) as url:
            _progress(f"  jobs {kind}: recording the answers")
            (answers,) = _child("bench.jobs", "record", url, kind, str(workdir))
            figures = report.JobFigures(
                jobs=args.jobs,
                requests=int(answers["requests"]),
                bytes=int(answers["bytes"]),
                sessions=int(answers["sessions"]),
            )
            for rep in range(args.job_repeat):
                for name in ("replay", "http"):
                    _progress(f"  jobs {kind} {name} ({rep + 1}/{args.job_repeat})")
                    for row in _child("bench.jobs", name, url, kind, str(workdir)):
                        figures.rows.setdefault(row["row"], Best()).add(row)
        out[kind] = figures
    return out


def _machine() -> dict[str, str]:
    import lxml.etree

    load = os.getloadavg()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "lxml": ".".join(str(p) for p in lxml.etree.LXML_VERSION[:3]),
        "platform": platform.platform(),
        "load": " ".join(f"{x:.2f}" for x in load),
    }


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="1,000 and 10,000 sessions and a 10 s EM load check"
    )
    parser.add_argument("--sizes", help="comma-separated session counts (overrides --quick's)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per contestant (best kept)")
    parser.add_argument(
        "--large-repeat",
        type=int,
        default=1,
        help="runs per contestant at 300,000 sessions and more (the peers there run once)",
    )
    parser.add_argument(
        "--jobs", type=int, default=jobs.JOBS, help="backup jobs of the job-session bench's estate"
    )
    parser.add_argument("--job-repeat", type=int, help="runs of each job-session poll (best kept)")
    parser.add_argument(
        "--no-instructions",
        dest="instructions",
        action="store_false",
        help="skip the callgrind count of a steady poll against the first",
    )
    parser.add_argument("--render-rounds", type=int, default=400, help="scrapes per median")
    parser.add_argument("--emload-seconds", type=float, help="length of the EM load check")
    parser.add_argument(
        "--answers", type=Path, help="keep the generated answers in this directory and reuse them"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    if args.sizes:
        args.sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",")})
    else:
        args.sizes = list(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.job_repeat is None:
        args.job_repeat = 1 if args.quick else min(args.repeat, 3)
    if args.emload_seconds is None:
        args.emload_seconds = 10.0 if args.quick else 30.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.monotonic()
    machine = _machine()
    with tempfile.TemporaryDirectory(prefix="veeam-em-bench-") as scratch:
        workdir = args.answers or Path(scratch) / "answers"
        _progress(f"answers for {', '.join(f'{n:,}' for n in args.sizes)} sessions in {workdir}")
        _child("bench.answers", str(workdir), *map(str, args.sizes))
        results: Results = {}
        missing: set[str] = set()
        _progress("in-memory parse and build:")
        measure_memory_table(args, workdir, results, missing)
        _progress("a steady poll against the first, in instructions:")
        instruction_size, instruction_counts = measure_instructions(args, workdir)
        _progress("whole poll over loopback HTTP:")
        measure_loopback(args, workdir, results)
        _progress("/metrics render:")
        render = measure_render(args, workdir)
        _progress(f"backup job sessions, {args.jobs:,} jobs:")
        job_figures = measure_jobs(args, workdir)
        sizes_in_bytes = {
            (kind, n): answers.path_for(workdir, kind, n).stat().st_size
            for kind in KINDS
            for n in args.sizes
        }
        _progress(f"EM load ({args.emload_seconds:g} s):")
        from bench import emload

        load = emload.run(Path(scratch), seconds=args.emload_seconds)
    machine["load at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    figures = report.Figures(
        machine=machine,
        sizes=args.sizes,
        repeat=args.repeat,
        results=results,
        bytes=sizes_in_bytes,
        render=render,
        render_rounds=args.render_rounds,
        load=load,
        jobs=job_figures,
        instruction_size=instruction_size,
        instructions=instruction_counts,
        target_size=TARGET_SIZE,
        missing=sorted(missing),
        minutes=(time.monotonic() - started) / 60,
    )
    report.print_all(figures, sys.stdout)
    if args.json:
        args.json.write_text(json.dumps(report.as_json(figures), indent=1), encoding="utf-8")
    mismatched = report.mismatches(figures)
    for problem in mismatched:
        print(f"ERROR {problem}")
    return 1 if mismatched else 0
