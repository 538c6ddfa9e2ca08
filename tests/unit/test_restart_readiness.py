"""The pieces that make a restart safe, alone: the configuration view rebuilt from the store,
the readiness reasons, and the check of the framework internals the worker relies on."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from badges import compat
from badges.config.entities import Organization, Template, encode_entity, entity_key
from badges.health import Health, crashed_services, not_ready_reasons
from badges.schemas.catalog import load_catalog
from badges.tables.compiled_config import CompiledConfigCache

ORG = "0b8a3f0e-0000-4000-8000-000000000001"
TPL = "7d4f6a52-0000-4000-8000-0000000000aa"


def record(entity: Any) -> tuple[bytes, bytes]:
    return entity_key(entity).encode(), encode_entity(entity)


def entities() -> list[tuple[bytes, bytes]]:
    return [record(Organization(uuid=ORG, name="ACME", api_key_env="TOKEN")),
            record(Template(uuid=TPL, organization=ORG, name="Demo"))]


def test_the_view_is_not_loaded_until_the_store_is_read_and_then_holds_every_stored_record() -> None:
    view = CompiledConfigCache(load_catalog())
    assert not view.loaded
    view.reload(entities())
    assert view.loaded
    snapshot = view.snapshot()
    assert list(snapshot.organizations) == [ORG] and list(snapshot.templates) == [TPL]


def test_a_reload_replaces_what_callbacks_built_and_later_callbacks_still_apply() -> None:
    view = CompiledConfigCache(load_catalog())
    org, tpl = entities()
    view.apply(*org)  # seen during recovery, then the store is the truth
    view.reload([tpl])
    assert not view.snapshot().organizations and list(view.snapshot().templates) == [TPL]
    generation = view.generation
    view.apply(tpl[0], None)  # a tombstone arriving live
    assert view.generation > generation and not view.snapshot().templates


async def test_waiting_for_the_configuration_ends_when_it_is_loaded() -> None:
    view = CompiledConfigCache(load_catalog())
    waiter = asyncio.ensure_future(view.wait_loaded())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    view.reload([])  # an empty configuration topic is a loaded one
    await asyncio.wait_for(waiter, 1)


def runtime(*, loaded: bool = True, recovered: bool = True, rebalancing: bool = False,
            in_recovery: bool = False, joined: bool | None = True, health: Health | None = None) -> Any:
    completed = asyncio.Event()
    if recovered:
        completed.set()
    config = CompiledConfigCache(load_catalog())
    if loaded:
        config.reload([])
    kafka_ingest = SimpleNamespace(joined=joined) if joined is not None else None
    app = SimpleNamespace(tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
                          rebalancing=rebalancing, in_recovery=in_recovery, crashed=False)
    return SimpleNamespace(app=app, config=config, kafka_ingest=kafka_ingest, redis_ingest=None,
                           dead_letters=None, health=health or Health(),
                           settings=SimpleNamespace(config_topic="badges-config"))


def test_ready_only_when_configuration_partitions_tables_and_ingestion_are() -> None:
    assert not_ready_reasons(runtime()) == []
    assert any("configuration not loaded" in r for r in not_ready_reasons(runtime(loaded=False)))
    assert any("partitions not assigned" in r for r in not_ready_reasons(runtime(recovered=False)))
    assert any("partitions not assigned" in r for r in not_ready_reasons(runtime(rebalancing=True)))
    assert any("tables recovering" in r for r in not_ready_reasons(runtime(in_recovery=True)))
    assert any("ingestion has not joined" in r for r in not_ready_reasons(runtime(joined=False)))


def test_components_report_their_own_reasons_and_clear_them() -> None:
    health = Health()
    rt = runtime(health=health)
    health.set_problem("schema_registry", "schema registry refused our credentials (401)")
    assert not_ready_reasons(rt) == ["schema registry refused our credentials (401)"]
    health.clear("schema_registry")
    assert not_ready_reasons(rt) == []


def test_liveness_names_crashed_services() -> None:
    rt = runtime()
    assert crashed_services(rt) == []
    rt.kafka_ingest = SimpleNamespace(crashed=True, crash_reason=RuntimeError("boom"), joined=True)
    assert crashed_services(rt) == ["kafka_ingest: RuntimeError"]


def test_the_installed_faust_and_aiokafka_have_every_internal_the_worker_uses() -> None:
    compat.check()


def test_a_missing_internal_stops_the_worker_with_one_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = compat.Internal("Fetcher._prefetch_backoff", lambda: False)
    monkeypatch.setattr(compat, "INTERNALS", (*compat.INTERNALS, gone))
    with pytest.raises(compat.InternalsMismatch) as err:
        compat.check()
    message = str(err.value)
    assert "Fetcher._prefetch_backoff" in message and "faust-streaming 0.15.x" in message
    assert "\n" not in message


def test_each_app_id_keeps_its_own_local_store_under_the_data_dir(tmp_path) -> None:
    """A data dir reused under another app id must not hand Faust persisted offsets of other
    changelogs (it refuses to start on them): the store lives in a folder per app id."""
    from badges.config.settings import load_settings
    from badges.workers.app import faust_settings

    one = faust_settings(load_settings(app_id="one", data_dir=tmp_path))
    two = faust_settings(load_settings(app_id="two", data_dir=tmp_path))
    assert one["datadir"] == str(tmp_path / "one") and two["datadir"] == str(tmp_path / "two")
