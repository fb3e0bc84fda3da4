"""Licence, version and changelog: what a release is made of, checked in the checkout.

The built artefacts are checked too: the wheel the image installs in tests/test_deployment.py,
the release sdist and wheel in .ci/check_dist.py (`make distcheck`).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from exporter import __version__

REPO = Path(__file__).resolve().parent.parent
LICENSE = REPO / "LICENSE"


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_licence_file_is_the_apache_license_2_0() -> None:
    text = LICENSE.read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n")
    assert "Version 2.0, January 2004" in text
    assert "http://www.apache.org/licenses/" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_metadata_declares_that_licence() -> None:
    project = pyproject()["project"]
    assert project["license"] == "Apache-2.0"  # an SPDX expression (PEP 639)
    assert project["license-files"] == [LICENSE.name]
    # The image says the same.
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert f'org.opencontainers.image.licenses="{project["license"]}"' in dockerfile


def test_the_version_is_read_from_the_package() -> None:
    data = pyproject()
    assert "version" not in data["project"]
    assert "version" in data["project"]["dynamic"]
    assert data["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "exporter.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_no_other_file_of_the_build_or_the_manual_names_the_version() -> None:
    # A release changes exporter/__init__.py (and adds its CHANGELOG.md section), nothing else.
    top = ("pyproject.toml", "setup.py", "Dockerfile", "Makefile", "README.md")
    paths = [REPO / name for name in (*top, "docker-compose.yml", "config.example.yml")]
    for glob in ("docs/*.md", "deploy/**/*", "packaging/**/*", ".ci/*", "grafana/**/*"):
        paths += [p for p in REPO.glob(glob) if p.is_file()]
    version = re.compile(rf"(?<![\d.]){re.escape(__version__)}(?![\d.])")
    # A Kubernetes manifest must name an image tag; tests/test_kubernetes.py keeps it equal to
    # the package's version, so a release that forgets it fails there.
    pinned = {
        REPO / "deploy/kubernetes/kustomization.yaml",
        REPO / "deploy/kubernetes/deployment.yaml",
    }
    paths = [p for p in paths if p not in pinned]
    named = [str(p.relative_to(REPO)) for p in paths if version.search(p.read_text("utf-8"))]
    assert not named, f"{__version__} is written in {named}"


def test_the_changelog_keeps_an_unreleased_section_first() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "keepachangelog.com" in text
    sections = re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE)
    assert sections and sections[0] == "Unreleased"
    for version in sections[1:]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
