"""`veeam-em-simulator`: run the simulated Enterprise Manager on its own."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from exporter.simulator.control import is_loopback
from exporter.simulator.em import SimulatedEM
from exporter.simulator.settings import SimulatorSettings, validate
from exporter.simulator.tlsutil import OpenSSLMissingError

DEFAULT_PORT = 9398
_DEFAULTS = SimulatorSettings()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="veeam-em-simulator",
        description="A simulated Veeam Backup Enterprise Manager REST API (/api/systemSessions, "
        "backup job sessions and the query service).",
    )
    a = p.add_argument
    a("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    a("--port", type=int, default=DEFAULT_PORT, help="port; 0 = any free (default: %(default)s)")
    a("--allow-remote", action="store_true", help="allow listening on a non-loopback address")
    a("--seed", type=int, default=_DEFAULTS.seed, help="history seed (default: %(default)s)")
    a("--backup-servers", type=int, default=_DEFAULTS.backup_servers, metavar="N",
      help="backup servers EM collects from (default: %(default)s)")  # fmt: skip
    a("--history-days", type=float, default=_DEFAULTS.history_days, metavar="DAYS",
      help="days of history at start, at most 30 (default: %(default)s)")  # fmt: skip
    a("--no-live", dest="live", action="store_false",
      help="freeze simulated time: no session starts or finishes by itself")  # fmt: skip
    a("--speed", type=float, default=_DEFAULTS.speed,
      help="clock acceleration, 60 = one simulated minute per second (default: %(default)s)")  # fmt: skip
    a("--username", default=_DEFAULTS.username, help="accepted user (default: %(default)s)")
    a("--password", default=_DEFAULTS.password, help="accepted password (default: %(default)s)")
    a("--json-casing", choices=("pascal", "camel"), default=_DEFAULTS.json_casing,
      help="JSON keys like v12 (pascal) or v13 (camel) (default: %(default)s)")  # fmt: skip
    a("--bom", action="store_true", help="start JSON bodies with a UTF-8 byte-order mark")
    a("--result-vocabulary", choices=("state", "short"), default=_DEFAULTS.result_vocabulary,
      help="Result/Result mirrors State, or says Success/Warning/Failed (default: %(default)s)")  # fmt: skip
    a("--fraction-digits", type=int, default=_DEFAULTS.fraction_digits, metavar="0-7",
      help="fractional digits in timestamps (default: %(default)s)")  # fmt: skip
    a("--references-for-plain-path", action="store_true",
      help="plain /api/systemSessions answers EntityReferences; ?format=Entity stays full")  # fmt: skip
    a("--token-idle-expiry", type=float, default=_DEFAULTS.token_idle_expiry, metavar="SECONDS",
      help="a token unused this long expires (default: %(default)s)")  # fmt: skip
    a("--latency", type=float, default=_DEFAULTS.latency, metavar="SECONDS",
      help="added to every API response (default: %(default)s)")  # fmt: skip
    a("--tls", action="store_true", help="serve HTTPS with a generated self-signed certificate")
    a("--hostname-in-hrefs", metavar="NAME",
      help="host name written into hrefs (default: the Host header of each request)")  # fmt: skip
    a("--extra-session-types", type=int, default=_DEFAULTS.extra_session_types, metavar="N",
      help="N more session types, one finished session each (default: %(default)s)")  # fmt: skip
    a("--fail-every", type=float, default=_DEFAULTS.fail_every, metavar="SECONDS",
      help="make the next session to finish fail once this long has passed since the last "
      "such failure; 0: off (default: %(default)s)")  # fmt: skip
    a("--jobs", type=int, default=_DEFAULTS.jobs, metavar="N",
      help="a generated estate of N backup jobs; 0: none (default: the demo estate)")  # fmt: skip
    a("--job-runs-per-day", type=float, default=_DEFAULTS.job_runs_per_day, metavar="RUNS",
      help="runs a day of each job of a generated estate (default: %(default)s)")  # fmt: skip
    a("--job-visibility", choices=("collection", "immediate"), default=_DEFAULTS.job_visibility,
      help="job sessions change at data-collection ticks, or at once (default: %(default)s)")  # fmt: skip
    a("--em-version", choices=("12", "13"), default=_DEFAULTS.em_version,
      help="job-session names, link encoding and unsorted order like v12 or v13 "
      "(default: %(default)s)")  # fmt: skip
    a("--query-window-days", type=float, default=_DEFAULTS.query_window_days, metavar="DAYS",
      help="the query service shows sessions this recent; 0: all (default: %(default)s)")  # fmt: skip
    a("--query-page-size-cap", type=int, default=_DEFAULTS.query_page_size_cap, metavar="N",
      help="largest pageSize the query service honours; 0: no cap (default: %(default)s)")  # fmt: skip
    a("--query-previous-link", action="store_true",
      help="query pages after the first carry a Previous link")  # fmt: skip
    a("--query-empty", choices=("list", "null"), default=_DEFAULTS.query_empty,
      help="an empty query page holds an empty list or a null slot (default: %(default)s)")  # fmt: skip
    a("--latency-per-mb", type=float, default=_DEFAULTS.latency_per_mb, metavar="SECONDS",
      help="added to every API response per MB of its body (default: %(default)s)")  # fmt: skip
    a("--log-requests", action="store_true", help="log every request to stderr")
    return p


def settings_from(args: argparse.Namespace) -> SimulatorSettings:
    return SimulatorSettings(
        seed=args.seed,
        backup_servers=args.backup_servers,
        history_days=args.history_days,
        live=args.live,
        speed=args.speed,
        username=args.username,
        password=args.password,
        json_casing=args.json_casing,
        bom=args.bom,
        result_vocabulary=args.result_vocabulary,
        fraction_digits=args.fraction_digits,
        references_for_plain_path=args.references_for_plain_path,
        token_idle_expiry=args.token_idle_expiry,
        latency=args.latency,
        tls=args.tls,
        host=args.host,
        port=args.port,
        hostname_in_hrefs=args.hostname_in_hrefs,
        extra_session_types=args.extra_session_types,
        fail_every=args.fail_every,
        jobs=args.jobs,
        job_runs_per_day=args.job_runs_per_day,
        job_visibility=args.job_visibility,
        em_version=args.em_version,
        query_window_days=args.query_window_days,
        query_page_size_cap=args.query_page_size_cap,
        query_previous_link=args.query_previous_link,
        query_empty=args.query_empty,
        latency_per_mb=args.latency_per_mb,
    )


def _host_is_loopback(host: str) -> bool:
    return host.lower() == "localhost" or is_loopback(host)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings_from(args)
    try:
        validate(settings)
    except ValueError as exc:
        parser.error(str(exc))
    if not _host_is_loopback(settings.host) and not args.allow_remote:
        parser.error(f"--host {settings.host} is not a loopback address; add --allow-remote")
    logging.basicConfig(
        level=logging.DEBUG if args.log_requests else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    simulator = SimulatedEM(settings)
    try:
        simulator.start()
    except OpenSSLMissingError as exc:
        print(f"veeam-em-simulator: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"veeam-em-simulator: cannot listen on {settings.host}:{settings.port}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _announce(simulator)
        stop.wait()
    finally:
        simulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("veeam-em-simulator: stopped", flush=True)
    return 0


def _announce(simulator: SimulatedEM) -> None:
    s = simulator.settings
    lines = [
        f"veeam-em-simulator: serving {simulator.url}/api/",
        f"  credentials: {s.username} / {s.password}",
        f"  history: {len(simulator.sessions())} sessions from {s.backup_servers} backup servers,"
        f" live={s.live} speed={s.speed}",
        f"  jobs: {len(simulator.jobs())} jobs, {len(simulator.job_sessions())} backup job sessions"
        f" collected (visibility: {s.job_visibility})",
        f"  control API: {simulator.url}/_sim/stats (loopback clients only)",
    ]
    if simulator.ca_file:
        lines.append(f"  CA certificate: {simulator.ca_file}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
