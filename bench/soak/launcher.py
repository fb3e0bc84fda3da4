"""``python -m bench.soak.launcher --soak.poll-interval SECONDS [exporter flags]``.

The exporter's own command line, main loop, signals and HTTP server, with one difference: every
server is polled every SECONDS. A configuration file cannot ask for less than 10 s (an EM is
shared infrastructure); the field that allows it, ``ServerConfig.poll_floor``, is set only in
Python, as ``--demo`` does for its in-process EM. Here the EMs are simulators on loopback, and
a soak needs thousands of polls in minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from exporter import cli
from exporter.config import Config


def faster(config: Config, interval: float) -> Config:
    servers = tuple(
        dataclasses.replace(s, poll_interval=interval, poll_floor=interval) for s in config.servers
    )
    return dataclasses.replace(config, servers=servers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--soak.poll-interval", dest="interval", type=float, required=True)
    ours, theirs = parser.parse_known_args(argv)
    read = cli.load_config

    def load_config(config_file: str | None) -> Config:
        return faster(read(config_file), ours.interval)

    # cli.main looks load_config up at each call, at start-up and on every reload alike.
    cli.load_config = load_config
    return cli.main(theirs)


if __name__ == "__main__":
    sys.exit(main())
