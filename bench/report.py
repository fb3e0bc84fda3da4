"""The bench's tables and its verdict on each target of docs/performance.md."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from bench.answers import KINDS, Kind

if TYPE_CHECKING:
    from bench.emload import LoadResult
    from bench.run import Best, Results

MB = 1_000_000
_KIND_TITLE: dict[Kind, str] = {
    "xml": "XML",
    "json-v12": "JSON, v12 keys (PascalCase)",
    "json-v13": "JSON, v13 keys (camelCase)",
}
_ROWS: dict[str, str] = {
    "floor": "the floor",  # replaced per kind
    "parse": "our parse only",
    "baseline": "our parse + snapshot/ledger build, baseline poll",
    "steady": "our parse + snapshot/ledger build, steady poll (same answer again)",
    "etree": "ElementTree DOM + the same aggregation",
    "xmltodict": "xmltodict + the same aggregation",
}
_FLOORS: dict[Kind, str] = {
    "xml": "bare lxml iterparse + clear() (floor)",
    "json-v12": "json.loads of the whole body (floor)",
    "json-v13": "json.loads of the whole body (floor)",
}
_LOOPBACK_ROWS = {
    "plain": "plain streaming GET + gunzip + bare iterparse",
    "baseline": "our EM client + parse + build, baseline poll",
    "steady": "our EM client + parse + build, steady poll",
}
_DRAIN_ROWS = {
    "drain-plain": "plain GET + gzip.GzipFile",
    "drain-client": "our EM client (deadline, caps), as the parser reads",
    "drain-buffered": "before: our EM client behind an io.BufferedReader",
}
_RENDER_ROWS = {
    "text": "text",
    "text+gzip": "text + gzip",
    "openmetrics+gzip": "OpenMetrics + gzip (what Prometheus asks for)",
    "before:text": "before: prometheus-client's app, text",
    "before:openmetrics+gzip": "before: prometheus-client's app, OpenMetrics + gzip",
}
_WIDTH = 66


@dataclass
class JobFigures:
    """The job-session bench of one format: what one bootstrap poll read, and the rows."""

    jobs: int
    requests: int
    bytes: int
    sessions: int
    rows: dict[str, Best] = field(default_factory=dict)


_JOB_ROWS = {
    "replay-baseline": "in memory (the answers replayed): bootstrap poll",
    "replay-steady": "in memory: steady poll (the same answers again)",
    "http-baseline": "over loopback HTTP from the simulator: bootstrap poll",
    "http-steady": "over loopback HTTP: steady poll",
}
_JOB_KIND_TITLE = {"xml": "XML", "json": "JSON (v13, camelCase)"}


@dataclass(frozen=True)
class Figures:
    machine: dict[str, str]
    sizes: list[int]
    repeat: int
    results: Results
    bytes: dict[tuple[Kind, int], int]
    render: dict[int, dict[str, float]]
    render_rounds: int
    load: LoadResult
    jobs: dict[str, JobFigures]
    instruction_size: int
    instructions: dict[Kind, tuple[int, int]]  # kind -> (baseline, steady) poll
    target_size: int
    minutes: float
    missing: list[str]

    def best(self, section: str, n: int, row: str) -> Best | None:
        return self.results.get((section, n, row))

    def ratio(self, section: str, n: int, row: str, floor: str) -> float | None:
        a, b = self.best(section, n, row), self.best(section, n, floor)
        if a is None or b is None or not b.seconds:
            return None
        return a.seconds / b.seconds

    @property
    def render_sizes(self) -> tuple[int, int]:
        ordered = sorted(self.render)
        return ordered[0], ordered[-1]

    @property
    def checked_size(self) -> int:
        """Where the targets are checked: 100,000 sessions, or the largest size measured."""
        if self.target_size in self.sizes:
            return self.target_size
        return max(self.sizes)


def _mb(kib: int) -> str:
    return f"+{kib * 1024 / MB:.1f} MB"


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _line(label: str, *cells: str, widths: tuple[int, ...] = (6, 11, 10, 17)) -> str:
    out = f"  {label:<{_WIDTH}}"
    for cell, width in zip(cells, widths, strict=False):
        out += f"{cell:>{width}}"
    return out.rstrip()


def memory_tables(f: Figures) -> Iterator[str]:
    for n in f.sizes:
        for kind in KINDS:
            floor = f.best(kind, n, "floor")
            if floor is None:
                continue
            size = f.bytes.get((kind, n), 0) / MB
            yield ""
            yield f"{_KIND_TITLE[kind]}, {n:,} sessions ({size:.1f} MB answer)"
            yield _line("approach", "runs", "best time", "vs floor", "peak RSS growth")
            for row in ("floor", "parse", "baseline", "steady", "etree", "xmltodict"):
                best = f.best(kind, n, row)
                if best is None:
                    if kind == "xml" and row in f.missing:
                        yield _line(f"{_ROWS[row]}: not installed (make bench installs it)")
                    continue
                label = _FLOORS[kind] if row == "floor" else _ROWS[row]
                ratio = f.ratio(kind, n, row, "floor") or 0.0
                yield _line(
                    label,
                    str(best.runs),
                    _seconds(best.seconds),
                    f"{ratio:.2f}x",
                    _mb(best.rss_kib),
                )


def instruction_table(f: Figures) -> Iterator[str]:
    yield ""
    yield (
        f"A steady poll against the first, in instructions (callgrind), "
        f"{f.instruction_size:,} sessions: parse + build + commit"
    )
    if not f.instructions:
        yield "  not measured (valgrind is not installed, or --no-instructions)"
        return
    yield _line("answer", "", "baseline", "steady", "steady/baseline", widths=(6, 11, 10, 17))
    for kind, (first, steady) in f.instructions.items():
        yield _line(
            _KIND_TITLE[kind],
            "",
            f"{first / 1e9:.3f} G",
            f"{steady / 1e9:.3f} G",
            f"{steady / first:.3f}x" if first else "-",
        )


def loopback_tables(f: Figures) -> Iterator[str]:
    for n in f.sizes:
        plain = f.best("loopback", n, "plain")
        if plain is None:
            continue
        yield ""
        yield (
            f"Whole poll over loopback HTTP with gzip (the real client path), {n:,} sessions "
            f"({f.bytes.get(('xml', n), 0) / MB:.1f} MB of XML)"
        )
        yield _line("approach", "runs", "best time", "vs plain", "peak RSS growth")
        for row, label in _LOOPBACK_ROWS.items():
            best = f.best("loopback", n, row)
            if best is not None:
                ratio = f.ratio("loopback", n, row, "plain") or 0.0
                yield _line(
                    label,
                    str(best.runs),
                    _seconds(best.seconds),
                    f"{ratio:.2f}x",
                    _mb(best.rss_kib),
                )
    for n in f.sizes:
        plain = f.best("drain", n, "drain-plain")
        if plain is None:
            continue
        yield ""
        yield f"What the client adds: the {n:,}-session answer read over loopback, not parsed"
        yield _line("reader", "runs", "best time", "vs plain")
        for row, label in _DRAIN_ROWS.items():
            best = f.best("drain", n, row)
            if best is not None:
                ratio = best.seconds / plain.seconds if plain.seconds else 0.0
                yield _line(label, str(best.runs), _seconds(best.seconds), f"{ratio:.2f}x")


def render_tables(f: Figures) -> Iterator[str]:
    small, large = f.render_sizes
    yield ""
    yield (
        f"/metrics render through the real HTTP app, median of {f.render_rounds} scrapes "
        "(the sizes taking turns), ms"
    )
    widths = (11, 11, 12)
    yield _line("way of asking", f"{small:,}", f"{large:,}", "ratio", widths=widths)
    for key, label in _RENDER_ROWS.items():
        a, b = f.render[small].get(key), f.render[large].get(key)
        if a is None or b is None:
            continue
        yield _line(label, f"{a:.2f}", f"{b:.2f}", f"{b / a:.2f}x", widths=widths)
    r = f.render[large]
    yield f"  where an uncached OpenMetrics scrape's time goes, at {large:,} sessions:"
    parts = (
        ("format:session-families", "formatting the session families (first scrape after a poll)"),
        ("format:self-metrics", "formatting the self-metrics (every scrape)"),
        ("collect:process", "the process collector reading /proc (every scrape)"),
    )
    for key, label in parts:
        yield _line(f"  {label}", "", f"{r[key]:.2f}", widths=widths)
    for level in (1, 9):
        yield _line(
            f"  gzip level {level} {'(now)' if level == 1 else '(before)'}: "
            f"{int(r['bytes:openmetrics']):,} -> {int(r[f'bytes:gzip-level-{level}']):,} bytes",
            "",
            f"{r[f'gzip:level-{level}']:.2f}",
            widths=widths,
        )


def job_tables(f: Figures) -> Iterator[str]:
    for kind, figures in f.jobs.items():
        yield ""
        yield (
            f"Backup job sessions, {_JOB_KIND_TITLE.get(kind, kind)}: a poll of {figures.jobs:,} jobs, "
            f"{figures.sessions:,} sessions in the window ({figures.requests} requests, "
            f"{figures.bytes / MB:.1f} MB)"
        )
        yield _line("poll", "runs", "best time", "per 1k", "peak RSS growth")
        for row, label in _JOB_ROWS.items():
            best = figures.rows.get(row)
            if best is None:
                continue
            per_k = best.seconds / figures.sessions * 1000 if figures.sessions else 0.0
            yield _line(
                label, str(best.runs), _seconds(best.seconds), _seconds(per_k), _mb(best.rss_kib)
            )
    system = f.best("xml", f.checked_size, "baseline")
    if f.jobs and system is not None:
        per_k = system.seconds / f.checked_size * 1000
        yield _line(
            f"beside: system sessions, XML, {f.checked_size:,}, baseline poll in memory",
            str(system.runs),
            _seconds(system.seconds),
            _seconds(per_k),
            _mb(system.rss_kib),
        )


def load_table(f: Figures) -> Iterator[str]:
    load = f.load
    yield ""
    yield (
        f"EM load: the exporter process polling the simulator, {load.scrapers} scrapers every "
        f"1 s for {load.seconds:.0f} s"
    )
    yield (
        f"  scrapes answered {load.scrapes} (failed {load.scrape_errors}); polls {load.polls}; "
        f"GETs of the sessions {load.gets}; logons {load.logons}; logouts {load.logouts}"
    )


@dataclass(frozen=True)
class Verdict:
    ok: bool | None  # None: not measured in this run
    target: str
    shown: str


def _at_most(value: float | None, bound: float, target: str, unit: str = "x") -> Verdict:
    if value is None:
        return Verdict(None, target, "not measured")
    shown = f"{value:.2f}{unit}" if unit != " MB" else f"{value:.1f} MB"
    return Verdict(value <= bound, target, shown)


def verdicts(f: Figures) -> Iterator[Verdict]:
    n = f.checked_size

    def growth(kind: str, size: int, row: str) -> float | None:
        best = f.best(kind, size, row)
        return None if best is None else best.rss_kib * 1024 / MB

    def steady_vs_first(kind: Kind) -> Verdict:
        # In instructions where counted: the seconds of the two differ by less than their noise.
        counted = f.instructions.get(kind)
        if counted is not None and counted[0]:
            ratio: float | None = counted[1] / counted[0]
            how = f"instructions, {f.instruction_size:,}"
        else:
            ratio, how = f.ratio(kind, n, "steady", "baseline"), "time"
        return _at_most(ratio, 1.0, f"{_KIND_TITLE[kind]}: steady poll <= first poll ({how})")

    yield _at_most(
        f.ratio("xml", n, "baseline", "floor"),
        1.6,
        "XML: parse + aggregate, baseline poll <= 1.6x the floor",
    )
    yield _at_most(
        f.ratio("xml", n, "steady", "floor"),
        1.6,
        "XML: parse + aggregate, steady poll <= 1.6x the floor",
    )
    for size in sorted({n, *(s for s in f.sizes if s >= f.target_size)}):
        yield _at_most(
            growth("xml", size, "baseline"), 40, f"XML: peak RSS growth <= 40 MB at {size:,}", " MB"
        )
    for kind in ("json-v12", "json-v13"):
        title = _KIND_TITLE[kind]
        yield _at_most(
            growth(kind, n, "baseline"), 40, f"{title}: peak RSS growth <= 40 MB (streamed)", " MB"
        )
        yield _at_most(
            f.ratio(kind, n, "baseline", "floor"),
            2.0,
            f"{title}: parse + aggregate <= 2.0x json.loads",
        )
    for kind in KINDS:
        yield steady_vs_first(kind)
    small, large = f.render_sizes
    for key, label in (("text", "text"), ("openmetrics+gzip", "OpenMetrics + gzip")):
        yield _at_most(
            f.render[large].get(key), 2.0, f"/metrics {label}: median <= 2 ms at {large:,}", " ms"
        )
        a, b = f.render[small].get(key), f.render[large].get(key)
        yield _at_most(
            None if not a or b is None else b / a,
            1.2,
            f"/metrics {label}: {large:,}/{small:,} <= 1.2",
        )
    load = f.load
    yield Verdict(
        load.one_logon, "EM load: one logon per token lifetime", f"{load.logons} logon(s)"
    )
    yield Verdict(
        load.one_get_per_poll,
        "EM load: exactly one GET per poll",
        f"{load.gets} GETs, {load.polls} polls",
    )
    yield _at_most(
        f.ratio("loopback", n, "steady", "plain"),
        1.6,
        "client path: steady poll <= 1.6x a plain GET + gunzip + iterparse",
    )
    yield _at_most(
        f.ratio("loopback", n, "baseline", "plain"),
        2.0,
        "client path: baseline poll <= 2.0x a plain GET + gunzip + iterparse",
    )


def verdict_lines(f: Figures) -> Iterator[str]:
    n = f.checked_size
    yield ""
    note = "" if n == f.target_size else f" (indicative: the targets are for {f.target_size:,})"
    yield f"Targets, at {n:,} sessions unless said{note}"
    for v in verdicts(f):
        word = {True: "PASS", False: "FAIL", None: "----"}[v.ok]
        yield f"  {word}  {v.target:<{_WIDTH + 10}} {v.shown:>16}"


def header(f: Figures) -> Iterator[str]:
    m = f.machine
    yield "veeam-em-exporter bench (python -m bench)"
    yield (
        f"  {m['date']}; {m['cpus']} CPUs; Python {m['python']}; lxml {m['lxml']}; {m['platform']}"
    )
    yield f"  load average at start {m['load']}, at end {m.get('load at end', '?')}"
    yield "  each run of a contestant in a fresh process, runs interleaved, the best time kept"
    yield "  peak RSS growth = ru_maxrss - RSS once imports are done and the answer is in memory"
    yield "  (the largest of the runs; a steady poll's from after the baseline poll); MB = 10^6 B"


def print_all(f: Figures, out: IO[str]) -> None:
    sections: list[Callable[[Figures], Iterator[str]]] = [
        header,
        memory_tables,
        instruction_table,
        loopback_tables,
        render_tables,
        job_tables,
        load_table,
        verdict_lines,
    ]
    for section in sections:
        for line in section(f):
            print(line, file=out)
    print(f"\nbench took {f.minutes:.1f} min", file=out)


def mismatches(f: Figures) -> list[str]:
    """Contestants that did not count every session: their timings would mean nothing."""
    problems = []
    for (section, n, row), best in sorted(f.results.items()):
        counted = best.sessions - {-1}
        if counted and counted != {n}:
            problems.append(f"{section} {n:,} {row}: counted {sorted(counted)}, expected {n:,}")
    for kind, figures in sorted(f.jobs.items()):
        for row, best in sorted(figures.rows.items()):
            if best.sessions != {figures.sessions}:
                problems.append(
                    f"jobs {kind} {row}: counted {sorted(best.sessions)}, "
                    f"expected {figures.sessions:,}"
                )
    return problems


def as_json(f: Figures) -> dict[str, Any]:
    return {
        "machine": f.machine,
        "results": [
            {
                "section": section,
                "sessions": n,
                "row": row,
                "seconds": best.seconds,
                "rss_kib": best.rss_kib,
                "runs": best.runs,
            }
            for (section, n, row), best in sorted(f.results.items())
        ],
        "render_ms": {str(n): values for n, values in f.render.items()},
        "load": vars(f.load),
        "instructions": {
            "sessions": f.instruction_size,
            **{k: {"baseline": a, "steady": b} for k, (a, b) in f.instructions.items()},
        },
        "jobs": {
            kind: {
                "jobs": figures.jobs,
                "requests": figures.requests,
                "bytes": figures.bytes,
                "sessions": figures.sessions,
                "rows": {
                    row: {"seconds": b.seconds, "rss_kib": b.rss_kib, "runs": b.runs}
                    for row, b in figures.rows.items()
                },
            }
            for kind, figures in f.jobs.items()
        },
        "verdicts": [vars(v) for v in verdicts(f)],
    }
