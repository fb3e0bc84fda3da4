"""Build information: the revision from git in a checkout, `unknown` everywhere else, never a failure."""

from __future__ import annotations

import platform
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter import __version__, build
from exporter.health import ExporterMetrics

REPO = Path(__file__).resolve().parent.parent


def needs_checkout() -> str:
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not running from a git checkout")
    return git


def fake_git(tmp_path: Path, script: str) -> Path:
    """A directory holding an executable `git` that runs `script` (sh)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = bin_dir / "git"
    git.write_text("#!/bin/sh\n" + script + "\n")
    git.chmod(0o755)
    return bin_dir


def test_a_checkout_reports_its_short_commit() -> None:
    git = needs_checkout()
    expected = subprocess.run(
        [git, "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    assert build.git_revision(REPO) == expected
    assert build.current().revision == expected


def test_without_a_checkout_the_revision_is_unknown(tmp_path: Path) -> None:
    # As in an installed wheel: the directory above the package has no .git.
    assert build.git_revision(tmp_path) == "unknown"


def test_a_checkout_git_cannot_read_is_unknown(tmp_path: Path) -> None:
    needs_checkout()
    (tmp_path / ".git").mkdir()  # not a repository
    assert build.git_revision(tmp_path) == "unknown"


def test_without_git_the_revision_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert build.git_revision(tmp_path) == "unknown"


@pytest.mark.parametrize(
    "script",
    [
        "echo 'fatal: detected dubious ownership' >&2; exit 128",
        "echo 'not a commit'",  # exit 0 but nothing like a hash
        "echo",
    ],
)
def test_a_failing_git_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.setenv("PATH", str(fake_git(tmp_path, script)))
    assert build.git_revision(tmp_path) == "unknown"


def test_a_hanging_git_is_cut_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.setenv("PATH", str(fake_git(tmp_path, "exec sleep 30")))
    started = time.monotonic()
    assert build.git_revision(tmp_path, timeout=0.2) == "unknown"
    assert time.monotonic() - started < 10


def test_the_fake_git_is_what_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Guards the tests above: with a fake git that answers, its answer is taken.
    (tmp_path / ".git").mkdir()
    monkeypatch.setenv("PATH", str(fake_git(tmp_path, "echo 0a1b2c3")))
    assert build.git_revision(tmp_path) == "0a1b2c3"


def test_current_names_version_revision_and_python() -> None:
    info = build.current()
    assert info.version == __version__
    assert info.python_version == platform.python_version()
    assert info.line() == (
        f"veeam-em-exporter {__version__} (revision {info.revision}, "
        f"python {platform.python_version()})"
    )
    assert build.current() is info  # git runs once per process


def test_build_info_carries_the_three_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = build.BuildInfo(version="9.8.7", revision="deadbee", python_version="3.99.1")
    monkeypatch.setattr(build, "current", lambda: pinned)
    registry = CollectorRegistry(auto_describe=False)
    ExporterMetrics(registry)
    text = generate_latest(registry).decode()
    assert (
        'veeam_em_exporter_build_info{pythonversion="3.99.1",revision="deadbee",version="9.8.7"} 1.0'
    ) in text


@pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="the process collector reads /proc"
)
def test_the_process_metrics_are_served_from_the_exporters_registry() -> None:
    registry = CollectorRegistry(auto_describe=False)
    ExporterMetrics(registry)
    start = registry.get_sample_value("process_start_time_seconds")
    assert start is not None
    assert 0 < start <= time.time()
    open_fds = registry.get_sample_value("process_open_fds")
    assert open_fds is not None
    assert open_fds >= 3  # stdin, stdout, stderr at least
