"""Build hook: wheels carry the repository's top-level templates/ and sweeps/ inside the package.

templates/ stays at the top of the repository, where the README, the tests and `make demo` use
it; a source checkout (an editable install) reads it there. A wheel has no checkout, so the
build copies the templates into transferlab/templates/ (runner.templates_dir looks there
first) and the example sweeps into transferlab/sweeps/. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# top-level folder -> (files, folder inside the package)
SHIPPED = {"templates": ("*.ipynb", "templates"), "sweeps": ("*.yaml", "sweeps")}


class BuildWithTemplates(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout
        for folder, (pattern, target) in SHIPPED.items():
            destination = Path(self.build_lib) / "transferlab" / target
            destination.mkdir(parents=True, exist_ok=True)
            for source in sorted((ROOT / folder).glob(pattern)):
                shutil.copy2(source, destination / source.name)


setup(cmdclass={"build_py": BuildWithTemplates})
