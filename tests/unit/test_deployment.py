"""docker-compose.yml cannot run here (no Docker engine): it must still parse and tell the truth
about the production topology, and every BADGES_ setting it names must exist."""

from __future__ import annotations

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
