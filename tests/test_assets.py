"""`veeam-em-exporter assets DIR`: the deployment files, written out of a checkout.

From the built wheel the same command is checked by tests/test_deployment.py (the image's
install) and .ci/check_dist.py (the release wheel in a fresh virtualenv).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from exporter import assets
from exporter.cli import main

REPO = Path(__file__).resolve().parent.parent


def repository_files() -> list[str]:
    return assets.find(REPO)


def written(target: Path) -> list[str]:
    return sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())


def test_the_assets_are_the_deployment_files_of_the_repository() -> None:
    files = repository_files()
    expected = {
        "config.example.yml",
        "prometheus/alerts.yml",
        "prometheus/alerts_test.yml",
        "packaging/systemd/veeam-em-exporter.service",
        "packaging/systemd/config.yml",
        "grafana/provisioning/dashboards/veeam-em.yml",
        "grafana/provisioning/datasources/prometheus.yml",
    }
    assert expected <= set(files)
    # Every dashboard, however many there are, without a list to keep in step.
    dashboards = sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("grafana/dashboards/*"))
    assert dashboards and set(dashboards) <= set(files)
    assert all((REPO / path).is_file() for path in files)


def test_a_checkout_is_its_own_source() -> None:
    # The tests run from a checkout, where nothing is bundled.
    assert assets.source_root() == REPO


def test_the_bundled_copies_win_over_a_checkout(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "exporter"
    (package / assets.BUNDLE).mkdir(parents=True)
    assert assets.source_root(package, REPO) == package / assets.BUNDLE


def test_without_copies_or_checkout_it_says_so(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "exporter"
    package.mkdir(parents=True)
    with pytest.raises(assets.AssetError, match="carries no deployment files"):
        assets.source_root(package, tmp_path / "site-packages")


def test_a_pattern_matching_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "config.example.yml").write_text("x\n")
    with pytest.raises(assets.AssetError, match=r"grafana/dashboards/\*\.json"):
        assets.find(tmp_path)


def test_writes_files_identical_to_the_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "new" / "dir"
    assert main(["assets", str(target)]) == 0
    files = repository_files()
    assert written(target) == files
    for path in files:
        assert (target / path).read_bytes() == (REPO / path).read_bytes(), path
        assert (target / path).stat().st_mode & 0o777 == 0o644
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{'wrote':<9} {target / path}" for path in files]


def test_a_second_run_leaves_identical_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["assets", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["assets", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("unchanged") == len(repository_files())
    assert "wrote" not in out


def test_refuses_to_overwrite_a_changed_file_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = tmp_path / "prometheus" / "alerts.yml"
    changed.parent.mkdir()
    changed.write_text("# my thresholds\n")
    assert main(["assets", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(changed) in err
    assert "--force" in err
    assert changed.read_text() == "# my thresholds\n"
    assert written(tmp_path) == ["prometheus/alerts.yml"]


def test_force_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    changed = tmp_path / "config.example.yml"
    changed.write_text("old\n")
    assert main(["assets", "--force", str(tmp_path)]) == 0
    assert changed.read_bytes() == (REPO / "config.example.yml").read_bytes()
    assert f"replaced  {changed}" in capsys.readouterr().out.splitlines()


def test_list_prints_the_paths_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["assets", "--list"]) == 0
    assert capsys.readouterr().out.split() == repository_files()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [["assets"], ["assets", "a", "b"], ["assets", "--bogus", "d"]])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: veeam-em-exporter assets" in capsys.readouterr().err


def test_a_target_that_is_a_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "file"
    target.write_text("")
    assert main(["assets", str(target)]) == 2
    assert "veeam-em-exporter assets:" in capsys.readouterr().err


def test_a_directory_in_the_way_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.example.yml").mkdir()
    assert main(["assets", str(tmp_path)]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert written(tmp_path) == []


def test_only_a_first_argument_assets_is_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    # Flags keep their meaning: a later "assets" is a stray argument of the exporter.
    with pytest.raises(SystemExit) as exit_info:
        main(["--log.level=info", "assets", "/tmp/x"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_help_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "assets DIR" in capsys.readouterr().out


def test_the_module_needs_only_the_standard_library() -> None:
    # setup.py imports it at build time, before any dependency is installed.
    tree = ast.parse(Path(assets.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
