"""Admin actions of the HTTP API: the same rules as the CLI, published with the worker's producer.

The rules live in one place each (``config.switch``, ``credly.sync``, ``tools.control``); the CLI
publishes with blocking confluent-kafka helpers, the worker with its own async producer. After a
configuration change the action waits (briefly) until this worker's configuration view holds the
new record, so the next request already sees it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Iterable

from badges.config.entities import Entity, encode_entity, entity_key
from badges.config.switch import TemplateSwitchError, switch_template
from badges.credly.errors import CredlyError
from badges.credly.sync import UnknownOrganization, pull_active_templates, select_organizations
from badges.tools.control import forget_request, manual_command, retry_failed_requests
from badges.web.http import HttpError

if TYPE_CHECKING:
    from badges.runtime import Runtime

log = logging.getLogger(__name__)

APPLY_WAIT_S = 10.0


async def publish_entities(runtime: "Runtime", entities: Iterable[Entity]) -> list[Entity]:
    """Send configuration records and wait until the broker has them all."""
    producer = runtime.app.producer
    topic = runtime.settings.config_topic
    sent = list(entities)
    futures = [
        await producer.send(topic, entity_key(e).encode(), encode_entity(e), 0, None, None)
        for e in sent
    ]
    try:
        await asyncio.gather(*futures)
    except Exception as exc:  # noqa: BLE001 - the producer's error, without our data
        raise HttpError(503, f"the configuration topic did not accept the change ({type(exc).__name__})") from None
    return sent


async def wait_applied(runtime: "Runtime", entities: list[Entity], timeout: float = APPLY_WAIT_S) -> bool:
    """True once this worker's configuration view holds every entity as published."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot = runtime.config.snapshot()
        current = {**snapshot.organizations, **snapshot.templates}
        if all(current.get(e.uuid) == e for e in entities):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)


async def switch(runtime: "Runtime", uuid: str, active: bool) -> dict[str, Any]:
    try:
        updated = switch_template(runtime.config.snapshot(), uuid, active, runtime.catalog)
    except TemplateSwitchError as exc:
        raise HttpError(404 if exc.reason == "not_found" else 422, str(exc)) from None
    await publish_entities(runtime, [updated])
    applied = await wait_applied(runtime, [updated])
    log.info("admin API: template %s %s", uuid, "activated" if active else "deactivated")
    return {"template": uuid, "active": active, "applied": applied}


async def sync(runtime: "Runtime", organization: str | None) -> dict[str, Any]:
    snapshot = runtime.config.snapshot()
    try:
        orgs = select_organizations(snapshot, organization)
    except UnknownOrganization as exc:
        raise HttpError(404 if organization else 422, str(exc)) from None
    try:
        results = await pull_active_templates(runtime.providers, snapshot, orgs)
    except CredlyError as exc:
        raise HttpError(502, str(exc)) from None  # the message names the provider
    entities = await publish_entities(runtime, [e for r in results for e in r.entities])
    applied = await wait_applied(runtime, entities)
    log.info("admin API: templates synced for %s", ", ".join(orgs))
    return {
        "organizations": [
            {"organization": r.organization, "pulled": r.pulled, "new": r.new, "changed": len(r.entities),
             "no_longer_active": r.no_longer_active}
            for r in results
        ],
        "applied": applied,
    }


async def retry_failed(runtime: "Runtime") -> dict[str, Any]:
    producer = runtime.app.producer
    topic = runtime.settings.decisions_topic
    requests = retry_failed_requests(runtime.settings)
    futures = [await producer.send(topic, None, value, partition, None, None) for partition, value in requests]
    try:
        await asyncio.gather(*futures)
    except Exception as exc:  # noqa: BLE001 - any producer error is a 503 naming its type
        raise HttpError(503, f"the retry request was not delivered ({type(exc).__name__})") from None
    log.info("admin API: retry-failed requested on %d partition(s)", len(requests))
    return {"requested_partitions": len(requests)}


async def manual(runtime: "Runtime", action: str, learner: int, template: str, reason: str) -> dict[str, Any]:
    """Manual award/revoke (docs/CONTRACT.md "Rules beyond the reference"): one command onto the learner's partition (see tools.control)."""
    if template not in runtime.config.snapshot().templates:
        raise HttpError(404, f"template {template} is not configured")
    partition, key, value = manual_command(runtime.settings, action, learner, template, reason)
    future = await runtime.app.producer.send(runtime.settings.learner_events_topic, key, value, partition, None, None)
    try:
        await future
    except Exception as exc:  # noqa: BLE001 - ditto
        raise HttpError(503, f"the {action} was not delivered ({type(exc).__name__})") from None
    log.info("admin API: manual %s of %s for learner %d", action, template, learner)
    return {"action": action, "learner": learner, "template": template, "reason": reason,
            "partition": partition, "submitted": True}


async def forget(runtime: "Runtime", learner_id: int) -> dict[str, Any]:
    """Publish the request to forget a learner on its partition (``tools.control``): the
    worker owning it carries it out in order with the learner's events, wherever it runs."""
    topic, partition, key, value = forget_request(runtime.settings, learner_id)
    future = await runtime.app.producer.send(topic, key, value, partition, None, None)
    try:
        await future
    except Exception as exc:  # noqa: BLE001 - ditto
        raise HttpError(503, f"the forget request was not delivered ({type(exc).__name__})") from None
    log.info("admin API: forget requested for learner %d", learner_id, extra={"learner_id": learner_id})
    return {"learner": learner_id, "partition": partition, "requested": True}
