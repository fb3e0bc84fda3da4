"""Command line: flags, wiring, signals and exit codes.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT) or a good ``--config.check``; 1 when the
exporter cannot start (the listen address is taken); 2 for a bad configuration or bad flags.
``--em.check`` exits 0 when every EM answered, 1 when any failed, 2 for a bad configuration.

``veeam-em-exporter assets ...`` is a command of its own (``exporter.assets``): only a first
argument of exactly ``assets`` selects it, so every flag of the exporter means what it did.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from exporter import __version__, assets, emcheck, logs
from exporter.app import Exporter
from exporter.build import current as current_build
from exporter.config import (
    ENV_PATHS,
    ENV_VARIABLES,
    Config,
    ConfigError,
    load_env,
    load_file,
    summary,
)
from exporter.config_warnings import config_warnings
from exporter.web import HTTPServer, make_app, parse_listen_address
from exporter.webconfig import WebConfig, load_web_config

if TYPE_CHECKING:
    from exporter.simulator import SimulatedEM

DEFAULT_LISTEN = ":9745"
DEMO_POLL_INTERVAL = 5.0

_log = logs.get_logger("main")


def _epilog() -> str:
    lines = ["environment (one EM, when --config.file is not given):"]
    width = max(len(var) for var in ENV_VARIABLES)
    for path, var in sorted(ENV_PATHS.items(), key=lambda item: item[1]):
        if path != "servers[0]":  # the password's second entry, for "one of the two" messages
            lines.append(f"  {var:<{width}}  {path}")
    lines += [
        "",
        "signals:",
        "  SIGTERM, SIGINT  stop polling, log out of every EM, exit 0",
        "  SIGHUP           reload the configuration (a bad one is logged, the old one kept)",
        "",
        "commands:",
        "  assets DIR       write the alert rules, dashboards, example configuration and systemd",
        "                   unit of this version into DIR (veeam-em-exporter assets --help)",
        "",
        "documentation: README.md and docs/ (configuration.md, alerts.md, deployment.md)",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="veeam-em-exporter",
        description="Prometheus exporter for Veeam Backup Enterprise Manager system sessions.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        metavar="PATH",
        help="YAML configuration file; without it one EM is configured from VEEAM_EM_* variables",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN,
        metavar="[HOST]:PORT",
        help=f"address to serve metrics on (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="path under which to expose metrics (default /metrics)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="TLS and basic auth for the exporter's own endpoints (exporter-toolkit format)",
    )
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="serve POST /-/reload to re-read the configuration (off by default)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        default="info",
        choices=["debug", "info", "warn", "error"],
        help="log level (default info)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        default="logfmt",
        choices=["logfmt", "json"],
        help="log format (default logfmt)",
    )
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the configuration, print a summary with secrets redacted, and exit",
    )
    parser.add_argument(
        "--em.check",
        dest="em_check",
        action="store_true",
        help="log on to every EM, read its sessions once, log out, print one line per EM, "
        "and exit (0 all ok, 1 any failed); serves nothing",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="poll a built-in simulated Enterprise Manager on loopback; no other set-up needed",
    )
    parser.add_argument("--version", action="version", version=current_build().line())
    return parser


def load_config(config_file: str | None) -> Config:
    if config_file:
        return load_file(config_file)
    return load_env(os.environ)


def _start_demo() -> tuple[SimulatedEM, Config]:
    from exporter.config import STALE_AFTER_FACTOR, ServerConfig
    from exporter.simulator import SimulatedEM, SimulatorSettings

    # A distinctive password: every registered secret is redacted from the logs, and
    # "demo" would blank out the word wherever it appears.
    # At 20x a CollectJob runs every 45 s per backup server, dated in real time (the clock
    # never runs ahead), and a session fails 90 s after the last forced failure plus the wait
    # for the next one to finish: the headline alert has something to fire on within minutes.
    settings = SimulatorSettings(
        live=True,
        speed=20.0,
        fail_every=90.0,
        password="demo-em-Pa55word",  # noqa: S106
    )
    sim = SimulatedEM(settings)
    sim.start()
    # The simulated EM runs in this process: polling it faster than a real EM may be polled
    # loads nothing else, and shows the live activity sooner.
    server = ServerConfig(
        name="demo-em",
        url=sim.url,
        username=settings.username,
        password=settings.password,
        poll_interval=DEMO_POLL_INTERVAL,
        poll_floor=DEMO_POLL_INTERVAL,
        stale_after=STALE_AFTER_FACTOR * DEMO_POLL_INTERVAL,
        timeout=10.0,
    )
    return sim, Config(servers=(server,))


def log_config_warnings(config: Config) -> None:
    for warning in config_warnings(config):
        _log.warning("configuration warning", detail=warning)


def _print_problems(title: str, exc: ConfigError) -> None:
    print(title, file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["assets"]:
        return assets.main(arguments[1:])
    args = build_parser().parse_args(arguments)
    logs.setup(args.log_level, args.log_format)

    web_config: WebConfig | None = None
    if args.web_config_file:
        # Before --config.check's exit, so a check validates the web config too.
        try:
            web_config = load_web_config(args.web_config_file)
        except ConfigError as exc:
            _print_problems(f"invalid web configuration ({args.web_config_file}):", exc)
            return 2
        for warning in web_config.warnings:
            _log.warning("web config setting has no effect", detail=warning)
    try:
        parse_listen_address(args.listen_address)
    except ValueError as exc:
        print(f"--web.listen-address: {exc}", file=sys.stderr)
        return 2
    if not args.telemetry_path.startswith("/") or args.telemetry_path in (
        "/",
        "/-/healthy",
        "/-/ready",
    ):
        print(
            "--web.telemetry-path: must start with / and not be /, /-/healthy or /-/ready",
            file=sys.stderr,
        )
        return 2

    if args.demo and args.em_check:
        print("--em.check and --demo cannot be combined", file=sys.stderr)
        return 2
    sim: SimulatedEM | None = None
    try:
        if args.demo:
            if args.config_check:
                print("--config.check and --demo cannot be combined", file=sys.stderr)
                return 2
            sim, config = _start_demo()
        else:
            config = load_config(args.config_file)
    except ConfigError as exc:
        _print_problems(f"invalid configuration ({args.config_file or 'environment'}):", exc)
        if not args.config_file and not any(os.environ.get(var) for var in ENV_VARIABLES):
            print(
                "hint: give --config.file PATH, or set VEEAM_EM_URL, VEEAM_EM_USERNAME and "
                "VEEAM_EM_PASSWORD; --demo tries the exporter against a simulated EM; "
                "--help lists every flag and variable",
                file=sys.stderr,
            )
        return 2

    if args.config_check:
        print(summary(config))
        warnings = config_warnings(config)
        if warnings:
            print("warnings:")
            print("\n".join(f"  {warning}" for warning in warnings))
    if args.em_check:
        return emcheck.run(config)
    if args.config_check:
        return 0

    log_config_warnings(config)

    exporter = Exporter()
    exporter.apply(config)
    reload_lock = threading.Lock()

    def reload() -> str | None:
        """Re-read the configuration; the old one keeps running if the new one is bad."""
        with reload_lock:
            if args.demo:
                _log.info("reload ignored in demo mode")
                return None
            try:
                new_config = load_config(args.config_file)
            except ConfigError as exc:
                exporter.reload_failed()
                _log.error(
                    "reload failed, keeping the running configuration",
                    problems="; ".join(exc.problems),
                )
                return "; ".join(exc.problems)
            exporter.apply(new_config)
            _log.info("configuration reloaded", servers=len(new_config.servers))
            log_config_warnings(new_config)
            return None

    app = make_app(
        exporter.registry,
        exporter.server_infos,
        args.telemetry_path,
        reload=reload if args.enable_lifecycle else None,
    )
    try:
        http = HTTPServer(app, args.listen_address, web_config=web_config)
    except OSError as exc:
        _log.error("cannot start", err=str(exc))
        if sim is not None:
            sim.stop()
        return 1

    wake = threading.Event()
    terminate = threading.Event()
    hup = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        _log.info("stopping", signal=signal.Signals(signum).name)
        terminate.set()
        wake.set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        # Reload outside the signal handler: it takes locks and joins threads.
        hup.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)

    http.start()
    shown_host = f"[{http.host}]" if ":" in http.host else http.host
    # A wildcard address is not one a browser can open; any other is exactly where we are.
    browse_host = "localhost" if http.host in ("::", "0.0.0.0") else shown_host  # noqa: S104
    _log.info(
        "listening",
        address=f"{shown_host}:{http.port}",
        scheme=http.scheme,
        basic_auth=bool(web_config and web_config.basic_auth_users),
        telemetry_path=args.telemetry_path,
        version=__version__,
    )
    if sim is not None:
        page = f"{http.scheme}://{browse_host}:{http.port}/"
        _log.info(
            "demo mode: polling a simulated Enterprise Manager",
            em_url=sim.url,
            metrics=f"{page.rstrip('/')}{args.telemetry_path}",
            page=page,
        )
        _log.info(
            "demo mode: a session fails every few minutes; to make the next one fail now, run",
            command=f"curl -X POST {sim.url}/_sim/fail",
        )
    for server in config.servers:
        _log.info(
            "polling", server=server.name, url=server.url, interval=f"{server.poll_interval:g}s"
        )
    exporter.start()

    while not terminate.is_set():
        # A timeout keeps the main thread responsive to signals on every platform.
        if not wake.wait(1.0):
            continue
        wake.clear()
        if hup.is_set() and not terminate.is_set():
            hup.clear()
            _log.info("reloading", signal="SIGHUP")
            reload()

    http.stop()
    exporter.stop()
    if sim is not None:
        sim.stop()
    _log.info("stopped")
    return 0
