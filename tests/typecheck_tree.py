"""Lay out ``build/typecheck/badges`` as links in the installed layout, for mypy (``make lint``).

The package ``badges`` is installed from several top-level folders (``[tool.setuptools]
package-dir`` in pyproject.toml: ``badges.agents`` is ``agents/``...). The editable install maps
them with an import hook, which mypy cannot follow, so mypy reads this tree of links instead
(``mypy_path``). It is rebuilt on every run from package-dir, so that a new module or a new
mapped package needs no step of its own.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "typecheck"


def package_dirs() -> dict[str, str]:
    """package-dir of pyproject.toml: package name -> folder (relative to the repository)."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return dict(tomllib.load(f)["tool"]["setuptools"]["package-dir"])


def build() -> None:
    shutil.rmtree(TREE, ignore_errors=True)
    mapped = package_dirs()
    top = TREE / "badges"
    top.mkdir(parents=True)
    for entry in (ROOT / mapped.pop("badges")).iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for package, folder in mapped.items():
        link = TREE.joinpath(*package.split("."))
        if link.is_symlink():  # a folder of badges/ with the same name: the mapping wins
            link.unlink()
        link.symlink_to(ROOT / folder)


if __name__ == "__main__":
    build()
