"""Every declared configuration key reaches everything derived from it.

Driven from the declarations (exporter.schema.keys), so that a key added to ServerConfig,
TLSConfig, SessionTypeFilter or Config cannot be forgotten in the ``--config.check`` summary,
the unknown-key suggestions, the environment map or the user documentation.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from exporter.config import (
    ENV_VARIABLES,
    Config,
    ConfigError,
    ServerConfig,
    load_env,
    load_file,
    summary,
)
from exporter.schema import Section, env_paths, keys

ROOT = Path(__file__).resolve().parent.parent
FULL = ROOT / "tests" / "fixtures" / "config" / "full.yml"
DOC = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def dotted(cls: type[object], prefix: str = "") -> list[str]:
    """Every leaf key of ``cls`` as shown in the summary (``tls.ca_file``)."""
    found = []
    for name, declared in keys(cls).items():
        if isinstance(declared.kind, Section):
            found += dotted(declared.kind.cls, f"{prefix}{name}.")
        else:
            found.append(f"{prefix}{name}")
    return found


def sections() -> list[tuple[str, type[object]]]:
    """(path of a section in a file, its class), the top level first."""
    found: list[tuple[str, type[object]]] = [("", Config), ("servers[0]", ServerConfig)]
    index = 1
    while index < len(found):
        path, cls = found[index]
        for name, declared in keys(cls).items():
            if isinstance(declared.kind, Section):
                found.append((f"{path}.{name}", declared.kind.cls))
        index += 1
    return found


def test_every_key_is_shown_by_config_check() -> None:
    text = summary(load_file(FULL)).splitlines()
    top = [name for name in dotted(Config) if name != "servers"]
    for name in top:
        assert any(line.startswith(f"{name}: ") for line in text), (name, text)
    server_lines = [line.strip().removeprefix("- ") for line in text if line.startswith("  ")]
    for name in dotted(ServerConfig):
        shown = [line for line in server_lines if line.startswith(f"{name}: ")]
        assert len(shown) == 2, (name, text)  # once for each server of the file


def test_no_secret_key_is_shown() -> None:
    text = summary(load_file(FULL))
    for server in load_file(FULL).servers:
        assert server.password not in text
        assert server.password not in repr(server)


@pytest.mark.parametrize(("path", "cls"), sections(), ids=lambda v: str(v) or "top")
def test_every_key_is_suggested_for_a_misspelling(
    tmp_path: Path, path: str, cls: type[object]
) -> None:
    base = yaml.safe_load(FULL.read_text())
    for name in keys(cls):
        misspelt = name[:-1] + ("X" if name[-1] != "X" else "Y")
        raw = yaml.safe_load(FULL.read_text())
        target = raw
        for part in re.findall(r"[^.\[\]]+", path):
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        target[misspelt] = target.pop(name, "x")
        file = tmp_path / "config.yml"
        file.write_text(yaml.safe_dump(raw))
        with pytest.raises(ConfigError) as info:
            load_file(file)
        where = f"{path}.{misspelt}" if path else misspelt
        expected = f"{where}: unknown key (did you mean {name!r}?)"
        assert expected in info.value.problems, (expected, info.value.problems)
    assert base  # the fixture itself is untouched


def test_the_environment_map_comes_from_the_declarations() -> None:
    declared = {
        **env_paths(Config),
        **env_paths(ServerConfig, "servers[0]"),
    }
    assert set(declared.values()) == set(ENV_VARIABLES)
    # Each variable sets a real key of the file.
    for path in declared:
        leaf = path.removeprefix("servers[0].")
        assert leaf in (dotted(ServerConfig) if path.startswith("servers[0].") else dotted(Config))


def test_each_variable_sets_the_key_it_is_declared_for(tmp_path: Path) -> None:
    """A value given by variable reads exactly as the same value given in a file."""
    samples = {
        "VEEAM_EM_NAME": "em-renamed",
        "VEEAM_EM_URL": "https://em09.example.com:9398",
        "VEEAM_EM_USERNAME": "CORP\\other",
        "VEEAM_EM_PASSWORD": "env-pa55word",
        "VEEAM_EM_PASSWORD_FILE": str(FULL.parent / "em02.secret"),
        "VEEAM_EM_FORMAT": "json",
        "VEEAM_EM_TIMEOUT": "12s",
        "VEEAM_EM_POLL_INTERVAL": "45s",
        "VEEAM_EM_STALE_AFTER": "9m",
        "VEEAM_EM_CA_FILE": str(FULL.parent / "ca.pem"),
        "VEEAM_EM_INSECURE_SKIP_VERIFY": "true",
        "VEEAM_EM_MAX_ANSWER_SIZE": "64MiB",
        "VEEAM_EM_MAX_SESSION_TYPES": "20",
        "VEEAM_EM_MAX_LOGON_FAILURES": "0",
        "VEEAM_EM_LOGON_RETRY_AFTER": "2h",
        "VEEAM_EM_JOB_SESSIONS_ENABLED": "no",
        "VEEAM_EM_JOB_SESSIONS_POLL_INTERVAL": "10m",
        "VEEAM_EM_JOB_SESSIONS_WINDOW": "72h",
        "VEEAM_EM_JOB_SESSIONS_BOOTSTRAP_WINDOW": "14d",
        "VEEAM_EM_JOB_SESSIONS_PAGE_SIZE": "200",
        "VEEAM_EM_JOB_SESSIONS_MAX_PAGES": "10",
    }
    # A new variable needs a sample here: this is where the test learns of it.
    assert set(samples) == set(ENV_VARIABLES)
    base = {
        "VEEAM_EM_URL": "https://em01.example.com:9398",
        "VEEAM_EM_USERNAME": "svc",
        "VEEAM_EM_PASSWORD": "base-pa55word",
    }
    paths = {var: path for path, var in env_paths(ServerConfig, "servers[0]").items()}
    paths.update({var: path for path, var in env_paths(Config).items()})
    for var, text in samples.items():
        env = dict(base)
        if var == "VEEAM_EM_PASSWORD_FILE":
            del env["VEEAM_EM_PASSWORD"]
        env[var] = text
        value = _lookup(load_env(env), paths[var])
        default = Config(
            servers=(ServerConfig(name="x", url="https://x", username="u", password="p"),)
        )
        assert value != _lookup(default, paths[var]), (var, value)


def _lookup(config: Config, path: str) -> object:
    holder: object = config
    for part in re.findall(r"[^.\[\]]+", path):
        holder = holder[int(part)] if part.isdigit() else getattr(holder, part)  # type: ignore[index]
    return holder


def section_class(cls: type[object], *names: str) -> type[object]:
    """The class of a nested section: ``section_class(ServerConfig, "tls")``."""
    for name in names:
        declared = keys(cls)[name].kind
        assert isinstance(declared, Section)
        cls = declared.cls
    return cls


def _doc_rows(heading: str) -> dict[str, list[str]]:
    """The rows of the first table after ``heading`` in docs/configuration.md, by first cell."""
    start = DOC.index(heading)
    rows: dict[str, list[str]] = {}
    for line in DOC[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells
    return rows


@pytest.mark.parametrize(
    ("heading", "cls"),
    [
        ("### Top level", Config),
        ("### Per server", ServerConfig),
        ("#### `tls`", keys(ServerConfig)["tls"].kind.cls),  # type: ignore[attr-defined]
        ("#### `session_types`", keys(ServerConfig)["session_types"].kind.cls),  # type: ignore[attr-defined]
        ("#### `job_sessions`", keys(ServerConfig)["job_sessions"].kind.cls),  # type: ignore[attr-defined]
        ("#### `job_sessions.job_types`", section_class(ServerConfig, "job_sessions", "job_types")),
    ],
)
def test_every_key_has_its_documentation_line(heading: str, cls: type[object]) -> None:
    assert set(_doc_rows(heading)) == set(keys(cls)), heading


def test_every_variable_has_its_documentation_line() -> None:
    rows = _doc_rows("## Environment variables")
    declared = {var: path for path, var in env_paths(Config).items()}
    declared.update({var: path for path, var in env_paths(ServerConfig, "servers[0]").items()})
    assert set(rows) == set(declared)
    for var, path in declared.items():
        assert f"`{path}`" in rows[var][-1], (var, rows[var])


def test_the_type_refuses_what_the_file_would_refuse() -> None:
    good = ServerConfig(name="em01", url="https://em01:9398", username="u", password="p")
    for change, message in [
        ({"poll_interval": 5.0}, "poll_interval: must be at least 10s"),
        ({"poll_interval": 600.0}, "stale_after: must be at least poll_interval (10m)"),
        ({"timeout": 0.0}, "timeout: must be greater than 0"),
        ({"format": "csv"}, "format: must be xml or json"),
        ({"url": "em01:9398"}, "url: must start with http:// or https://"),
        ({"name": " "}, "name: must not be empty"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            dataclasses.replace(good, **change)  # type: ignore[arg-type]
    # Canonical as the file reader makes it.
    canonical = dataclasses.replace(good, url="HTTPS://EM01:9398/", format="JSON")  # type: ignore[arg-type]
    assert (canonical.url, canonical.format) == ("https://em01:9398", "json")
    # The one explicit way below the floor: the in-process simulated EM of --demo.
    fast = dataclasses.replace(good, poll_interval=5.0, poll_floor=5.0, stale_after=15.0)
    assert fast.poll_interval == 5.0
    with pytest.raises(ValueError, match="names must be unique"):
        Config(servers=(good, good))


def test_a_file_cannot_set_the_demo_floor(tmp_path: Path) -> None:
    file = tmp_path / "config.yml"
    file.write_text(
        textwrap.dedent(
            """\
            servers:
              - name: em01
                url: https://em01:9398
                username: u
                password: p
                poll_floor: 1s
            """
        )
    )
    with pytest.raises(ConfigError) as info:
        load_file(file)
    assert info.value.problems[0].startswith("servers[0].poll_floor: unknown key")
