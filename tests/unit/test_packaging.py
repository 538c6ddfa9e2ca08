"""The installed package must work from any directory: every module and data file is shipped."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def package_dirs() -> dict[str, Path]:
    """Every package found on disk under the package-dir mapping, by import name."""
    found = {}
    for name, folder in SETUPTOOLS["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            dotted = ".".join((name, *rel.parts)) if rel.parts else name
            found[dotted] = init.parent
    return found


def test_every_package_on_disk_is_listed_for_installation() -> None:
    missing = sorted(set(package_dirs()) - set(SETUPTOOLS["packages"]))
    assert not missing, f"add to [tool.setuptools] packages: {missing}"


def test_data_files_the_code_reads_are_declared_package_data() -> None:
    dirs = package_dirs()
    declared = SETUPTOOLS["package-data"]
    needed = {
        "badges.schemas": ["catalog.json", *(f"avro/{p.name}" for p in (ROOT / "schemas" / "avro").glob("*.avsc"))],
        "badges.config": ["sample.yaml"],
    }
    web = ROOT / "badges" / "web"
    needed["badges.web"] = [str(p.relative_to(web)) for sub in ("templates", "static") for p in (web / sub).glob("*") if p.is_file()]
    for package, files in needed.items():
        assert package in dirs
        for f in files:
            assert any(fnmatch(f, pattern) for pattern in declared.get(package, [])), f"{package}: {f} is not package data"


def test_console_script_points_at_the_cli() -> None:
    assert PYPROJECT["project"]["scripts"]["badges"] == "badges.cli.main:main"
