"""A normal (non-editable) install works from any directory: the wheel carries every module and
data file (schemas, the sample configuration, web templates and static files).

The wheel is built the way pip builds it, installed into a directory of its own, and used from a
temporary directory outside the repository, with the dependencies of the test environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

PROBE = r"""
import json, sys
from importlib import resources

import badges
from badges.schemas.catalog import load_catalog
from badges.workers.dev import sample_config_text
from badges.config.file import validate_file
from badges.web.routes import STATIC

assert badges.__file__.startswith(sys.argv[1]), badges.__file__  # the wheel, not the checkout
catalog = load_catalog()
checked = validate_file(sample_config_text(), catalog)
assert not checked.errors, checked.errors
templates = resources.files("badges.web") / "templates"
print(json.dumps({
    "event_types": len(list(catalog)),
    "sample_templates": len(checked.document.templates),
    "web_templates": sorted(p.name for p in templates.iterdir() if p.name.endswith(".html")),
    "static": sorted(p.name for p in STATIC.iterdir()),
}))
"""


def test_the_wheel_works_outside_the_repository(tmp_path: Path) -> None:
    dist, site, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(ROOT)], check=True, timeout=300)
    [wheel] = dist.glob("*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=120)

    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run([sys.executable, "-c", PROBE, str(site)], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    import json

    found = json.loads(probe.stdout)
    assert found["event_types"] > 10 and found["sample_templates"] == 3
    assert "learner.html" in found["web_templates"] and found["static"]

    # the wheel's console script from there too: validate the shipped sample offline
    sample = elsewhere / "sample.yaml"
    sample.write_text(subprocess.run(
        [sys.executable, "-c", "from badges.workers.dev import sample_config_text; print(sample_config_text())"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout)
    cli = subprocess.run([str(site / "bin" / "badges"), "config", "validate", "--offline", str(sample)],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stdout + cli.stderr
