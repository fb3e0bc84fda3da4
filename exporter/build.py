"""What this exporter is: version, git revision and Python version, for build_info and --version.

The revision is asked of git only when the package runs from a checkout (the directory above
``exporter/`` holds ``.git``): a wheel, an image or a distribution package has no checkout, and
then the revision is ``unknown``. Any failure of git (absent, not a repository, refused as
"dubious ownership", slower than ``GIT_TIMEOUT``) is ``unknown`` too, never a failed start.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from exporter import __version__

UNKNOWN = "unknown"
# rev-parse answers in milliseconds; the bound only matters on a hung file system.
GIT_TIMEOUT = 2.0
CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class BuildInfo:
    version: str
    revision: str
    python_version: str

    def line(self) -> str:
        """The --version line."""
        return (
            f"veeam-em-exporter {self.version} "
            f"(revision {self.revision}, python {self.python_version})"
        )


def git_revision(checkout: Path = CHECKOUT, timeout: float = GIT_TIMEOUT) -> str:
    """Short commit of ``checkout``, or ``unknown`` when it is not a git checkout of its own."""
    # Only the package's own checkout: a wheel installed under some other repository (a
    # home directory kept in git) must not report that repository's commit.
    if not (checkout / ".git").exists():
        return UNKNOWN
    git = shutil.which("git")
    if git is None:
        return UNKNOWN
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [git, "-C", str(checkout), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    revision = result.stdout.strip()
    if result.returncode != 0 or not revision.isalnum():
        return UNKNOWN
    return revision


@cache
def current() -> BuildInfo:
    """This process's build information; git runs at most once per process."""
    return BuildInfo(__version__, git_revision(), platform.python_version())
