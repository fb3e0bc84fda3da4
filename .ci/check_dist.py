#!/usr/bin/env python3
"""Check the release artefacts in DIST (default dist/, as `make dist` leaves them).

`make distcheck` runs it after `make dist`; CI runs that after the tests. It checks:

- exactly one sdist and one wheel, of the version in exporter/__init__.py; `twine check --strict`;
- the sdist holds what the wheel is built from (the deployment files, LICENSE, setup.py);
- the wheel's metadata (version, License-Expression as in pyproject.toml, License-File and the
  licence text) and its deployment files, byte for byte the repository's;
- installed into a fresh virtualenv (never the development one), with no PYTHONPATH and outside
  the checkout: `--version`; `--demo` serves session metrics, then exits 0 on SIGTERM;
  `assets DIR` writes files identical to the repository's, refuses to overwrite a changed one
  (exit 2) unless --force, and `assets --list` names the same files.

The wheel's dependencies come from the package index, as for a user.
"""

from __future__ import annotations

import email.parser
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from exporter import assets  # noqa: E402 - the checkout's list of deployment files

DEMO_DEADLINE = 90.0  # seconds for the demo to serve its first poll's session metrics
STOP_DEADLINE = 30.0
SESSION_METRIC = re.compile(r'^veeam_em_system_sessions\{server="demo-em"', re.MULTILINE)


class CheckFailed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def step(message: str) -> None:
    print(f"check-dist: {message}", flush=True)


def run(args: Sequence[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 - our own programs, no shell
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        **kwargs,
    )
    return result


def must(args: Sequence[str | Path], **kwargs: Any) -> str:
    result = run(args, **kwargs)
    check(
        result.returncode == 0,
        f"{' '.join(map(str, args))} exited {result.returncode}\n{result.stdout}{result.stderr}",
    )
    return result.stdout


def wait_for(condition: Callable[[], bool], deadline: float) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


def project_version() -> str:
    text = (REPO / "exporter" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    check(match is not None, "exporter/__init__.py: no __version__")
    assert match is not None
    return match.group(1)


def artefacts(dist: Path, version: str) -> tuple[Path, Path]:
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    check(len(sdists) == 1 and len(wheels) == 1, f"{dist}: want one sdist and one wheel")
    sdist, wheel = sdists[0], wheels[0]
    check(sdist.name == f"veeam_em_exporter-{version}.tar.gz", f"{sdist.name}: not {version}")
    check(wheel.name == f"veeam_em_exporter-{version}-py3-none-any.whl", f"{wheel.name}")
    return sdist, wheel


def check_sdist(sdist: Path, version: str, files: list[str]) -> None:
    prefix = f"veeam_em_exporter-{version}/"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(prefix) for name in archive.getnames()}
    required = {"LICENSE", "README.md", "pyproject.toml", "setup.py", "exporter/assets.py"}
    missing = sorted((required | set(files)) - names)
    check(not missing, f"{sdist.name} lacks {missing}")
    step(f"{sdist.name}: {len(names)} entries, every deployment file and LICENSE included")


def check_wheel(wheel: Path, version: str, files: list[str]) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    dist_info = f"veeam_em_exporter-{version}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = email.parser.Parser().parsestr(
            archive.read(f"{dist_info}/METADATA").decode("utf-8")
        )
        check(metadata["Version"] == version, f"METADATA Version {metadata['Version']}")
        expression = metadata["License-Expression"]
        check(
            expression == pyproject["project"]["license"],
            f"License-Expression {expression!r} is not pyproject's "
            f"{pyproject['project']['license']!r}",
        )
        check(metadata.get_all("License-File") == ["LICENSE"], "License-File is not LICENSE")
        licence = archive.read(f"{dist_info}/licenses/LICENSE")
        check(licence == (REPO / "LICENSE").read_bytes(), "the wheel's LICENSE differs")
        bundle = f"exporter/{assets.BUNDLE}/"
        carried = sorted(name.removeprefix(bundle) for name in names if name.startswith(bundle))
        check(carried == files, f"the wheel carries {carried}, the repository has {files}")
        for path in files:
            data = archive.read(bundle + path)
            check(data == (REPO / path).read_bytes(), f"{wheel.name}: {path} differs")
    step(f"{wheel.name}: License-Expression {expression}, {len(files)} deployment files")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_demo(exporter: Path, cwd: Path, env: dict[str, str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    process = subprocess.Popen(  # noqa: S603
        [str(exporter), "--demo", f"--web.listen-address=127.0.0.1:{port}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    body = ""

    def serves_sessions() -> bool:
        nonlocal body
        check(process.poll() is None, f"--demo exited {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                body = answer.read().decode("utf-8")
        except (urllib.error.URLError, OSError):
            return False
        return bool(SESSION_METRIC.search(body)) and 'veeam_em_up{server="demo-em"} 1.0' in body

    try:
        started = time.monotonic()
        served = wait_for(serves_sessions, DEMO_DEADLINE)
        check(served, f"--demo served no session metrics within {DEMO_DEADLINE:g}s")
        waited = time.monotonic() - started
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=STOP_DEADLINE)
    finally:
        if process.poll() is None:
            process.kill()
            out, _ = process.communicate()
    check(process.returncode == 0, f"--demo exited {process.returncode} on SIGTERM:\n{out}")
    check("msg=stopped" in out, f"--demo did not log its stop:\n{out}")
    series = len(SESSION_METRIC.findall(body))
    step(f"--demo: {series} session series after {waited:.1f}s, exit 0 on SIGTERM")


def check_assets(exporter: Path, work: Path, env: dict[str, str], files: list[str]) -> None:
    listed = must([exporter, "assets", "--list"], cwd=work, env=env).split()
    check(listed == files, f"assets --list: {listed}, the repository: {files}")
    target = work / "assets"
    out = must([exporter, "assets", target], cwd=work, env=env)
    written = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    check(written == files, f"assets wrote {written}, the repository has {files}")
    for path in files:
        check((target / path).read_bytes() == (REPO / path).read_bytes(), f"{path} differs")
    check(out.count("wrote") == len(files), f"assets printed:\n{out}")
    # Again: identical files are fine; a changed one is kept unless --force.
    must([exporter, "assets", target], cwd=work, env=env)
    changed = target / "prometheus" / "alerts.yml"
    changed.write_text("# edited\n")
    refused = run([exporter, "assets", target], cwd=work, env=env)
    check(refused.returncode == 2, f"assets over a changed file exited {refused.returncode}")
    check(str(changed) in refused.stderr, f"the refusal does not name the file:\n{refused.stderr}")
    check(changed.read_text() == "# edited\n", "assets overwrote a changed file without --force")
    must([exporter, "assets", "--force", target], cwd=work, env=env)
    check(changed.read_bytes() == (REPO / changed.relative_to(target)).read_bytes(), "--force")
    step(f"assets: {len(files)} files identical to the repository's; exit 2 over a changed file")


def check_install(wheel: Path, version: str, files: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="check-dist-") as temporary:
        work = Path(temporary)
        venv = work / "venv"
        # The interpreter running this script (the development venv's) makes a fresh venv
        # from its base Python: nothing of the development venv is visible in it.
        must([sys.executable, "-m", "venv", venv])
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        must([venv / "bin" / "pip", "install", "--quiet", "--no-cache-dir", wheel], env=env)
        step(f"installed {wheel.name} into a fresh virtualenv")

        exporter = venv / "bin" / "veeam-em-exporter"
        location = must(
            [venv / "bin" / "python", "-c", "import exporter; print(exporter.__file__)"],
            cwd=work,
            env=env,
        ).strip()
        check(location.startswith(str(venv)), f"exporter imported from {location}")
        line = must([exporter, "--version"], cwd=work, env=env).strip()
        check(
            re.fullmatch(
                rf"veeam-em-exporter {re.escape(version)} \(revision unknown, "
                r"python 3\.\d+\.\d+\S*\)",
                line,
            )
            is not None,
            f"--version printed {line!r}",
        )
        step(f"--version: {line}")
        check_demo(exporter, work, env)
        check_assets(exporter, work, env, files)


def main(argv: Sequence[str]) -> int:
    dist = Path(argv[0] if argv else REPO / "dist").resolve()
    try:
        version = project_version()
        sdist, wheel = artefacts(dist, version)
        twine = must([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel])
        step(f"twine check --strict: {twine.count('PASSED')} of 2 passed")
        files = assets.find(REPO)
        check_sdist(sdist, version, files)
        check_wheel(wheel, version, files)
        check_install(wheel, version, files)
    except (CheckFailed, assets.AssetError) as exc:
        print(f"check-dist: FAILED: {exc}", file=sys.stderr)
        return 1
    step("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
