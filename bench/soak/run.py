"""The soak's phases, its table and its verdict (``python -m bench.soak --help``)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import requests
from e2e.helpers import Scrape

from bench.soak import check
from bench.soak.faults import PLAN, FaultInjector
from bench.soak.probe import ExporterUnderTest, Sample, listen_overflows, percentile, sample
from exporter.simulator import SimSession, SimulatedEM, SimulatorSettings

MIB = 1024.0
# Each EM differs in the ways the exporter reads answers, and in how fast its time runs:
# from two simulated minutes per second to ten, so sessions start and finish all the time.
EM_VARIANTS: tuple[dict[str, object], ...] = (
    {"speed": 120.0, "backup_servers": 2},
    {"speed": 240.0, "backup_servers": 3, "format": "json"},
    {"speed": 360.0, "backup_servers": 2, "format": "json", "json_casing": "camel", "bom": True},
    {"speed": 600.0, "backup_servers": 4, "result_vocabulary": "short", "fraction_digits": 7},
)
EXPORTER_TIMEOUT = 2.0  # seconds; a "delay" fault goes 1.5 times past it or stays well under


@dataclass
class Phase:
    name: str
    started: float
    ended: float = 0.0
    polls: float = 0.0
    poll_errors: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    scrape_errors: int = 0


@dataclass(frozen=True)
class Totals:
    polls: float
    errors: float


def totals(scrape: Scrape) -> Totals:
    polls = sum(scrape.select("veeam_em_polls_total").values())
    errors = sum(scrape.select("veeam_em_poll_errors_total").values())
    return Totals(polls, errors)


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.sims: dict[str, SimulatedEM] = {}
        self.formats: dict[str, str] = {}
        self.exporter: ExporterUnderTest | None = None
        self.base = ""
        self.phases: list[Phase] = []
        self._phase_lock = threading.Lock()
        self._stop_monitor = threading.Event()
        self._monitor: threading.Thread | None = None
        self.failures: list[str] = []

    # --- set-up --------------------------------------------------------------------------

    def start_sims(self) -> None:
        for i in range(self.args.servers):
            variant = dict(EM_VARIANTS[i % len(EM_VARIANTS)])
            name = f"em{i + 1:02d}"
            self.formats[name] = str(variant.pop("format", "xml"))
            settings = SimulatorSettings(
                seed=self.args.seed + i,
                history_days=self.args.history_days,
                # Frozen until every server has its baseline, so the baseline is known exactly.
                live=False,
                password=f"soak-{name}-Pa55word",
                **variant,  # type: ignore[arg-type]
            )
            sim = SimulatedEM(settings)
            sim.start()
            self.sims[name] = sim

    def write_config(self) -> Path:
        # JSON is YAML; a configuration file holds the 10 s minimum, the launcher goes below.
        servers = [
            {
                "name": name,
                "url": sim.url,
                "username": sim.settings.username,
                "password": sim.settings.password,
                "format": self.formats[name],
                "timeout": f"{int(EXPORTER_TIMEOUT * 1000)}ms",
            }
            for name, sim in self.sims.items()
        ]
        path = self.workdir / "exporter.yml"
        path.write_text(
            json.dumps(
                {
                    "poll_interval": "10s",
                    "stale_after": "60s",
                    # Ten times what these EMs answer, as a deployment would set it: the
                    # oversized and gzip-bomb faults then meet the cap, not the default 1GiB.
                    "max_answer_size": "32MiB",
                    "servers": servers,
                }
            ),
            encoding="utf-8",
        )
        return path

    def start_exporter(self) -> None:
        self.exporter = ExporterUnderTest(self.write_config(), self.args.poll_interval)
        self.base = self.exporter.base_url()

    # --- measuring -----------------------------------------------------------------------

    def scrape(self) -> Scrape:
        response = requests.get(self.base + "/metrics", timeout=10)
        response.raise_for_status()
        return Scrape.parse(response.text)

    def begin(self, name: str) -> Phase:
        """End the current phase (if any) and start the next, each bounded by one scrape."""
        at = totals(self.scrape())
        now = time.monotonic()
        with self._phase_lock:
            if self.phases:
                last = self.phases[-1]
                last.ended = now
                last.polls = at.polls - last.polls
                last.poll_errors = at.errors - last.poll_errors
            phase = Phase(name, now, polls=at.polls, poll_errors=at.errors)
            self.phases.append(phase)
        self.take_sample()
        return phase

    def take_sample(self) -> Sample:
        assert self.exporter is not None
        s = sample(self.exporter.pid)
        with self._phase_lock:
            self.phases[-1].samples.append(s)
        return s

    def _monitor_loop(self) -> None:
        # The whole run: resources every half second, and one timed scrape with each.
        while not self._stop_monitor.wait(0.5):
            try:
                self.take_sample()
            except OSError:
                return  # the process is gone; the verdict notices
            began = time.monotonic()
            try:
                response = requests.get(self.base + "/metrics", timeout=10)
                took: float | None = time.monotonic() - began
                response.raise_for_status()
                Scrape.parse(response.text)  # a duplicate or unparsable sample is an error too
            except (requests.RequestException, AssertionError, ValueError):
                took = None
            with self._phase_lock:
                phase = self.phases[-1]
                if took is not None:
                    phase.latencies.append(took)
                else:
                    phase.scrape_errors += 1

    def start_monitor(self) -> None:
        self._monitor = threading.Thread(target=self._monitor_loop, name="monitor", daemon=True)
        self._monitor.start()

    def stop_monitor(self) -> None:
        self._stop_monitor.set()
        if self._monitor is not None:
            self._monitor.join(15.0)

    # --- phases --------------------------------------------------------------------------

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.2)  # polling a condition with a deadline, not synchronising on time
        self.failures.append(f"timed out after {timeout:g}s waiting for {what}")
        return False

    def succeeded_since(self, moment: float) -> bool:
        """Has every server had a successful poll that began after `moment` (Unix time)?"""
        scrape = self.scrape()
        return all(
            (scrape.value("veeam_em_last_successful_poll_timestamp_seconds", server=name) or 0.0)
            > moment
            for name in self.sims
        )

    def load(self, seconds: float) -> tuple[list[float], int]:
        """`scrapers` threads scraping in a loop: half reuse a connection, half open one each."""
        latencies: list[list[float]] = [[] for _ in range(self.args.scrapers)]
        errors = [0] * self.args.scrapers
        messages: list[str] = []
        deadline = time.monotonic() + seconds

        def scraper(i: int) -> None:
            session = requests.Session() if i % 2 else None
            while time.monotonic() < deadline:
                began = time.monotonic()
                try:
                    get = session.get if session is not None else requests.get
                    response = get(self.base + "/metrics", timeout=10)
                    good = response.status_code == 200 and "veeam_em_up" in response.text
                    if not good:
                        messages.append(f"HTTP {response.status_code}")
                except requests.RequestException as exc:
                    good = False
                    messages.append(type(exc).__name__)
                if good:
                    latencies[i].append(time.monotonic() - began)
                else:
                    errors[i] += 1
            if session is not None:
                session.close()

        threads = [
            threading.Thread(target=scraper, args=(i,), name=f"scraper-{i}", daemon=True)
            for i in range(self.args.scrapers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 30.0)
        if messages:
            self.failures.append(f"load phase scrape errors: {sorted(set(messages))[:5]}")
        return [x for per in latencies for x in per], sum(errors)

    def run(self) -> None:
        d = self.args.duration
        self.start_sims()
        self.start_exporter()
        assert self.exporter is not None
        self.begin("start")
        self.start_monitor()
        started = time.time()
        if not self.wait_until(
            lambda: self.succeeded_since(started - 60.0), 30.0, "every server's first poll"
        ):
            return
        baseline = {name: sim.sessions() for name, sim in self.sims.items()}

        self.begin("warm-up")
        for sim in self.sims.values():
            sim.set(live=True)
        time.sleep(0.10 * d)  # the phase's length: polls go on meanwhile
        warm = self.take_sample()

        self.begin("faults")
        injector = FaultInjector(
            self.sims, timeout=EXPORTER_TIMEOUT, seed=self.args.seed, pause=self.args.fault_pause
        )
        injector.start()
        try:
            # Every fault kind has been served by now, the largest answers (a JSON answer is
            # read whole, up to max_answer_size) included: the allocator keeps that high-water
            # mark, so growth is judged from here; what grows after it is what a leak looks like.
            time.sleep(0.15 * d)
            settled = self.take_sample()
            time.sleep(0.40 * d)
            load = self.begin("load")
            overflows = listen_overflows()
            latencies, errors = self.load(0.25 * d)
            self.report_load(latencies, overflows)
            with self._phase_lock:
                load.latencies.extend(latencies)
                load.scrape_errors += errors
        finally:
            injector.stop()

        self.begin("quiet")
        for sim in self.sims.values():
            sim.set(live=False)
        frozen = time.time()
        # Sessions that finished after the last poll before the freeze are in the records
        # but not yet counted: wait for a poll that began after the freeze on every server.
        self.wait_until(lambda: self.succeeded_since(frozen), 30.0, "a poll after the freeze")
        time.sleep(0.05 * d)  # more polls of the frozen answer: nothing may change any more
        final_scrape = self.scrape()
        end = self.take_sample()
        self.begin("end")
        self.stop_monitor()

        self.judge_resources(warm, settled, end)
        self.judge_faults(injector)
        for name, sim in self.sims.items():
            self.failures.extend(check.problems(name, final_scrape, baseline[name], sim.sessions()))
        self.report_counts(final_scrape, baseline, injector)

    # --- verdict -------------------------------------------------------------------------

    def judge_resources(self, warm: Sample, settled: Sample, end: Sample) -> None:
        a = self.args
        grew = (end.rss_kib - settled.rss_kib) / MIB
        print(
            f"after warm-up: RSS {warm.rss_kib / MIB:.1f} MiB; after the first faults -> end:"
            f" RSS {settled.rss_kib / MIB:.1f} -> {end.rss_kib / MIB:.1f} MiB"
            f" ({grew:+.1f}, bound +{a.rss_bound:g}), fds {settled.fds} -> {end.fds}"
            f" (bound +{a.fd_bound}), threads {settled.threads} -> {end.threads}"
            f" (bound +{a.thread_bound})"
        )
        if grew > a.rss_bound:
            self.failures.append(
                f"RSS grew {grew:.1f} MiB after the first faults (bound {a.rss_bound:g})"
            )
        if end.fds - settled.fds > a.fd_bound:
            self.failures.append(f"open fds grew {settled.fds} -> {end.fds} (bound +{a.fd_bound})")
        if end.threads - settled.threads > a.thread_bound:
            self.failures.append(
                f"threads grew {settled.threads} -> {end.threads} (bound +{a.thread_bound})"
            )
        polls = sum(p.polls for p in self.phases)
        if polls < a.min_polls:
            self.failures.append(f"only {polls:g} polls (at least {a.min_polls} asked)")
        failed = {p.name: p.scrape_errors for p in self.phases if p.scrape_errors}
        if failed:
            self.failures.append(f"scrapes failed, by phase: {failed}")

    def judge_faults(self, injector: FaultInjector) -> None:
        self.failures.extend(f"fault injection: {p}" for p in injector.problems[:5])
        served = ", ".join(f"{w}/{k}={injector.served[(w, k)]}" for w, k in PLAN)
        print(f"faults served: {served}")
        missing = [f"{w}/{k}" for w, k in PLAN if not injector.served[(w, k)]]
        if missing:
            self.failures.append(f"faults never served: {', '.join(missing)}")
        faults_by_kind: dict[str, int] = {}
        for sim in self.sims.values():
            for kind, n in sim.stats.faults_served.items():
                faults_by_kind[kind] = faults_by_kind.get(kind, 0) + n
        print(f"faults by kind (simulators' own count): {dict(sorted(faults_by_kind.items()))}")

    def report_load(self, latencies: Sequence[float], overflows_before: int | None) -> None:
        slow = sum(1 for x in latencies if x >= 1.0)
        after = listen_overflows()
        dropped = (
            "unknown"
            if overflows_before is None or after is None
            else f"{after - overflows_before}"
        )
        print(
            f"load: {len(latencies)} good scrapes by {self.args.scrapers} threads, {slow} of"
            f" them took 1 s or more; listen queue overflows meanwhile: {dropped}"
        )

    def report_counts(
        self, scrape: Scrape, baseline: dict[str, list[SimSession]], injector: FaultInjector
    ) -> None:
        for name, sim in self.sims.items():
            counted = len(check.counted_since(baseline[name], sim.sessions()))
            reported = sum(
                scrape.select("veeam_em_system_sessions_finished_total", server=name).values()
            )
            errors = {r: int(v) for r, v in scrape.errors(name).items() if v}
            polls = scrape.value("veeam_em_polls_total", server=name) or 0.0
            print(
                f"{name}: {polls:g} polls, {injector.served_by_server[name]} faults (served at"
                f" most {injector.longest_wait[name]:.1f} s after queued,"
                f" {injector.nudges[name]} nudged);"
                f" {counted} sessions finished after the baseline, {reported:g} counted;"
                f" logons {scrape.value('veeam_em_logins_total', server=name) or 0:g};"
                f" poll errors {errors}"
            )

    def table(self) -> str:
        head = (
            "phase",
            "secs",
            "polls",
            "poll err",
            "RSS MiB min-max",
            "fds",
            "threads",
            "scrapes",
            "p50 ms",
            "p99 ms",
            "scrape err",
        )
        rows = [head]
        for p in self.phases:
            if p.name == "end":
                continue
            rss = [s.rss_kib / MIB for s in p.samples]
            fds = [s.fds for s in p.samples]
            thr = [s.threads for s in p.samples]
            p50, p99 = percentile(p.latencies, 0.50), percentile(p.latencies, 0.99)
            rows.append(
                (
                    p.name,
                    f"{p.ended - p.started:.0f}",
                    f"{p.polls:g}",
                    f"{p.poll_errors:g}",
                    f"{min(rss):.1f}-{max(rss):.1f}" if rss else "-",
                    f"{min(fds)}-{max(fds)}" if fds else "-",
                    f"{min(thr)}-{max(thr)}" if thr else "-",
                    str(len(p.latencies) + p.scrape_errors),
                    "-" if p50 is None else f"{p50 * 1000:.1f}",
                    "-" if p99 is None else f"{p99 * 1000:.1f}",
                    str(p.scrape_errors),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        )

    def stop(self) -> None:
        """Everything this run started, whatever state it is in."""
        self.stop_monitor()
        if self.exporter is not None:
            alive = self.exporter.alive()
            code = self.exporter.stop()
            if not alive:
                self.failures.append(f"the exporter died during the run (exit {code})")
            elif code != 0:
                self.failures.append(f"the exporter exited {code} on SIGTERM")
            errors = [line for line in self.exporter.notable if "level=error" in line]
            if errors:
                self.failures.append(f"{len(errors)} error log lines, first: {errors[0]}")
            print(f"exporter log lines by level: {dict(sorted(self.exporter.by_level.items()))}")
        for sim in self.sims.values():
            sim.stop()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description="Reliability soak of the exporter process."
    )
    parser.add_argument("--duration", type=float, default=240.0, help="seconds (default 240)")
    parser.add_argument("--servers", type=int, default=4, help="simulated EMs (default 4)")
    parser.add_argument(
        "--poll-interval", type=float, default=0.25, help="seconds per server (default 0.25)"
    )
    parser.add_argument("--scrapers", type=int, default=20, help="load threads (default 20)")
    parser.add_argument("--history-days", type=float, default=2.0, help="per EM (default 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fault-pause",
        type=float,
        default=1.0,
        help="mean seconds between one EM's fault batches (default 1)",
    )
    parser.add_argument("--min-polls", type=int, default=2000, help="fail below (default 2000)")
    parser.add_argument("--rss-bound", type=float, default=25.0, help="MiB growth (default 25)")
    parser.add_argument("--fd-bound", type=int, default=8, help="fd growth (default 8)")
    parser.add_argument("--thread-bound", type=int, default=2, help="growth (default 2)")
    return parser.parse_args(argv)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through the `finally` below, so the exporter and simulators stop.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with tempfile.TemporaryDirectory(prefix="veeam-soak-") as workdir:
        soak = Soak(args, Path(workdir))
        try:
            soak.run()
        except Exception as exc:
            soak.failures.append(f"the soak itself failed: {type(exc).__name__}: {exc}")
        finally:
            soak.stop()
    print()
    print(soak.table())
    print()
    if soak.failures:
        print("FAIL")
        for failure in soak.failures:
            print(f"  {failure}")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
