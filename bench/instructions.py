"""A steady poll against the first one, in instructions: the two differ by less than the noise
of seconds, so their times alone cannot say which costs more.

``python -m bench.instructions FILE POLLS`` reads the answer and polls it POLLS times into one
ledger (0: imports and reading only). Run under callgrind three times, with POLLS 0, 1 and 2,
the differences of the instruction counts are the first (baseline) poll and the steady poll:
each process does the same work up to its last poll, with the hash seed fixed.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import ours
from bench.answers import TAKEN_AT

_COLLECTED = re.compile(r"^==\d+== Collected : (\d+)$", re.MULTILINE)


def polls(path: Path, count: int) -> None:
    data = path.read_bytes()
    fmt: ours.Format = "xml" if path.name.startswith("xml") else "json"
    ledger = ours.new_ledger()
    for _ in range(count):
        ours.poll(io.BytesIO(data), fmt, ledger, taken_at=TAKEN_AT.timestamp())


def valgrind() -> str | None:
    return shutil.which("valgrind")


def available() -> bool:
    return valgrind() is not None


def measure(path: Path, cwd: Path, timeout: float = 3600) -> tuple[int, int]:
    """(instructions of the baseline poll, of the steady poll) of the answer at ``path``; the
    three processes run side by side."""
    program = valgrind()
    if program is None:
        raise RuntimeError("valgrind is not installed")
    env = dict(os.environ, PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory(prefix="veeam-em-bench-cg-") as scratch:
        runs = [
            subprocess.Popen(  # noqa: S603 - valgrind on our own interpreter and module
                [
                    program,
                    "--tool=callgrind",
                    f"--callgrind-out-file={Path(scratch) / f'callgrind.{count}'}",
                    sys.executable,
                    "-m",
                    "bench.instructions",
                    str(path),
                    str(count),
                ],
                cwd=cwd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for count in (0, 1, 2)
        ]
        counts = []
        for run in runs:
            _, err = run.communicate(timeout=timeout)
            found = _COLLECTED.search(err)
            if run.returncode != 0 or found is None:
                raise RuntimeError(f"callgrind failed: {err.strip()[-2000:]}")
            counts.append(int(found.group(1)))
    setup, first, second = counts
    return first - setup, second - first


def main(argv: list[str]) -> int:
    polls(Path(argv[0]), int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
