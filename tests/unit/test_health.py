"""The readiness hook (badges/health.py) and the components that report into it."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from badges.agents.lifecycle_emitter import LifecycleEmitter
from badges.health import Health
from badges.schemas.catalog import load_catalog
from badges.wire.registry import RegistryAuthError, SchemaRegistry
from tests.support.openedx import COURSE_PASSING
from tests.support.registry import StandInRegistry


def test_a_problem_is_logged_once_and_cleared(caplog: pytest.LogCaptureFixture) -> None:
    health = Health()
    assert health.ok and health.problems == {}
    with caplog.at_level(logging.INFO, logger="badges.health"):
        assert health.set_problem("schema_registry", "refused (401)") is True
        assert health.set_problem("schema_registry", "refused (401)") is False
        assert health.problems == {"schema_registry": "refused (401)"} and not health.ok
        health.clear("schema_registry")
        health.clear("schema_registry")
    assert health.ok
    assert [r.getMessage() for r in caplog.records] == ["not ready: refused (401)", "schema_registry: resolved"]


async def test_a_refused_registration_of_a_lifecycle_schema_is_reported() -> None:
    with StandInRegistry(credentials=("key", "right/secret+")) as reg:
        runtime = SimpleNamespace(
            settings=SimpleNamespace(lifecycle_topic="learning-badges-lifecycle"),
            catalog=load_catalog(), health=Health(),
        )
        registry = SchemaRegistry(reg.url, username="key", password="wrong/secret+")
        emitter = LifecycleEmitter(runtime, registry)  # type: ignore[arg-type]  # a stand-in of the three fields it reads
        with pytest.raises(RegistryAuthError):
            await emitter._schema_id("value", COURSE_PASSING)
    assert "refused our credentials (401)" in runtime.health.problems["schema_registry"]
    assert "wrong/secret+" not in runtime.health.problems["schema_registry"]
