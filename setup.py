"""One build step pyproject.toml cannot express: the deployment files go into the wheel.

The alert rules, dashboards, example configuration and systemd unit live where the compose
stack, the tests and the documentation use them (prometheus/, grafana/, packaging/, the root),
outside the package directory. ``[tool.setuptools.package-data]`` only takes files inside a
package, so it would need a second copy in the repository, or a package mapped onto the
repository root; instead this build_py step copies the one copy into the wheel at build time
(``exporter/_assets/``, where ``exporter.assets`` finds it). Because ``get_source_files``
names them too, the sdist carries them with no MANIFEST.in to keep in step, and a wheel built
from the sdist (as ``python -m build`` does) has them as well. An editable install copies
nothing: it runs from the checkout, where ``exporter.assets`` reads the files in place.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from exporter import assets  # noqa: E402 - the checkout's own, standard library only


class BuildPyWithAssets(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        bundle = Path(self.build_lib) / "exporter" / assets.BUNDLE
        # A reused build/ directory must not keep a file the repository no longer has.
        shutil.rmtree(bundle, ignore_errors=True)
        for path in assets.find(HERE):
            destination = bundle / path
            self.mkpath(str(destination.parent))
            self.copy_file(str(HERE / path), str(destination), preserve_mode=False)

    def get_source_files(self) -> list[str]:
        # The stubs leave distutils' get_source_files untyped; it returns a list of paths.
        sources: list[str] = super().get_source_files()  # type: ignore[no-untyped-call]
        return [*sources, *assets.find(HERE)]


setup(cmdclass={"build_py": BuildPyWithAssets})
