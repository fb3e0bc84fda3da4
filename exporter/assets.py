"""The deployment files a pip user needs, and ``veeam-em-exporter assets DIR`` to write them out.

The files have one home in the repository (``prometheus/``, ``grafana/``, ``packaging/``,
the root), where the compose stack, the tests and the documentation use them. A wheel carries
copies under ``exporter/_assets/``, put there by the build (``setup.py``); an editable or
source checkout has none and reads them from the checkout itself. Either way DIR receives them
under their repository paths, so the documentation's paths work in DIR as in a clone.

Standard library only: ``setup.py`` imports this module at build time, before any dependency is
installed, to know which files to copy.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Repository paths; a glob picks up every file it matches (a new dashboard needs no change
# here). Each must match at least one file, or the build fails rather than ship without it.
PATTERNS = (
    "config.example.yml",
    "prometheus/*.yml",
    "grafana/dashboards/*.json",
    "grafana/provisioning/dashboards/*.yml",
    "grafana/provisioning/datasources/*.yml",
    "packaging/systemd/veeam-em-exporter.service",
    "packaging/systemd/config.yml",
)
# Where the wheel carries them, relative to the package directory.
BUNDLE = "_assets"
PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent


class AssetError(Exception):
    """The files cannot be found or written; the message says which and why."""


def find(root: Path) -> list[str]:
    """Every asset under ``root`` as a sorted repository path; AssetError if a pattern finds none."""
    found: set[str] = set()
    missing: list[str] = []
    for pattern in PATTERNS:
        matches = [p for p in root.glob(pattern) if p.is_file()]
        if not matches:
            missing.append(pattern)
        found.update(p.relative_to(root).as_posix() for p in matches)
    if missing:
        raise AssetError(f"{root}: no file matches {', '.join(missing)}")
    return sorted(found)


def source_root(package: Path = PACKAGE, checkout: Path = CHECKOUT) -> Path:
    """The copies in the installed package, else the checkout the package runs from."""
    bundled = package / BUNDLE
    if bundled.is_dir():
        return bundled
    if (checkout / "pyproject.toml").is_file() and (checkout / PATTERNS[0]).is_file():
        return checkout
    raise AssetError(
        f"this installation carries no deployment files (neither {bundled} nor a checkout "
        f"at {checkout}); install the wheel, or run from a clone of the repository"
    )


@dataclass(frozen=True)
class Planned:
    path: str  # repository path, also the path below the target directory
    action: str  # "write", "keep" (identical already) or "replace"


def plan(root: Path, target: Path, force: bool) -> list[Planned]:
    """What writing to ``target`` would do; AssetError listing every file it would overwrite
    when they differ and ``force`` is not set, so that nothing is written then."""
    planned: list[Planned] = []
    conflicts: list[str] = []
    for path in find(root):
        destination = target / path
        if not destination.exists() and not destination.is_symlink():
            planned.append(Planned(path, "write"))
            continue
        if not destination.is_file():
            raise AssetError(f"{destination}: exists and is not a file")
        try:
            same = destination.read_bytes() == (root / path).read_bytes()
        except OSError as exc:
            raise AssetError(f"{destination}: {exc.strerror or exc}") from exc
        if same:
            planned.append(Planned(path, "keep"))
        elif force:
            planned.append(Planned(path, "replace"))
        else:
            conflicts.append(str(destination))
    if conflicts:
        raise AssetError(
            "these files exist and differ from this version's (--force overwrites them):\n  "
            + "\n  ".join(conflicts)
        )
    return planned


def _write(source: Path, destination: Path) -> None:
    # Through a temporary file in the same directory: an interrupted run never leaves half a
    # file where Prometheus or systemd would read it.
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(source.read_bytes())
        os.chmod(temporary, 0o644)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write(root: Path, target: Path, force: bool = False) -> list[Planned]:
    """Write every asset below ``target`` (see ``plan``); returns what was done."""
    planned = plan(root, target, force)
    for item in planned:
        if item.action != "keep":
            try:
                _write(root / item.path, target / item.path)
            except OSError as exc:
                raise AssetError(f"{target / item.path}: {exc.strerror or exc}") from exc
    return planned


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="veeam-em-exporter assets",
        description="Write the alert rules and their tests, the Grafana dashboards and "
        "provisioning examples, the example configuration and the systemd unit of this "
        "version into DIR, under their paths in the repository (DIR/prometheus/alerts.yml, "
        "DIR/grafana/dashboards/..., DIR/packaging/systemd/...). Files that exist and differ "
        "are left alone, and nothing is written, unless --force is given.",
        epilog="exit status: 0 written (or already identical), 2 on any error",
    )
    parser.add_argument("dir", nargs="?", metavar="DIR", help="target directory (created)")
    parser.add_argument(
        "--force", action="store_true", help="overwrite files that exist and differ"
    )
    parser.add_argument(
        "--list", action="store_true", help="print the files' paths and write nothing"
    )
    return parser


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dir is None and not args.list:
        parser.error("DIR is required (or --list)")
    try:
        root = source_root()
        if args.list:
            print("\n".join(find(root)))
            return 0
        target = Path(args.dir)
        done = write(root, target, force=args.force)
    except AssetError as exc:
        print(f"veeam-em-exporter assets: {exc}", file=sys.stderr)
        return 2
    verbs = {"write": "wrote", "keep": "unchanged", "replace": "replaced"}
    for item in done:
        print(f"{verbs[item.action]:<9} {target / item.path}")
    return 0
