"""Badge lifecycle events out: BADGE_AWARDED / BADGE_REVOKED in the event-bus wire format.

Not an agent: the Credly sink calls the emitter once a provider call has succeeded.

Other Open edX services consume ``{prefix-}learning-badges-lifecycle`` with edx-event-bus-kafka,
so the events use the openedx-events schemas, the Confluent framing and the ``ce_*`` headers.
With a schema registry the schemas are registered (TopicRecordNameStrategy) and their ids used;
without one the id is 0 and consumers must read with the reader schema.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from badges.config.entities import Template
from badges.wire.encode import encode_kafka_event

if TYPE_CHECKING:
    from badges.runtime import Runtime
    from badges.wire.registry import SchemaRegistry

AWARDED = "org.openedx.learning.badge.awarded.v1"
REVOKED = "org.openedx.learning.badge.revoked.v1"
BADGE_NAMESPACE = uuid.UUID("5b1f1d8e-6c2a-4f7e-9a53-0c2b7d1e8a41")


def badge_uuid(learner_id: int, template_uuid: str) -> str:
    """Local, stable id of a learner's badge of a template (docs/CONTRACT.md "Lifecycle events")."""
    return str(uuid.uuid5(BADGE_NAMESPACE, f"{learner_id}:{template_uuid}"))


def badge_record(learner: dict[str, Any], template_uuid: str, template: Template | None,
                 origin: str = "credly") -> dict[str, Any]:
    """BadgeData; ``origin`` is the provider of the template's organization."""
    return {
        "badge": {
            "uuid": badge_uuid(int(learner["id"]), template_uuid),
            "user": {
                "id": int(learner["id"]),
                "is_active": True,
                "pii": {
                    "username": learner.get("username", ""),
                    "email": learner.get("email", ""),
                    "name": learner.get("name", ""),
                },
            },
            "template": {
                "uuid": template_uuid,
                "origin": origin,
                "name": template.name if template else None,
                "description": template.description if template else None,
                "image_url": template.image_url if template else None,
            },
        }
    }


class LifecycleEmitter:
    """Encodes and sends the lifecycle events; ``registry`` is the worker's schema registry, or
    None when none is configured (then the schema ids are 0), passed in rather than looked up
    so that the ids never depend on which other component happened to create a registry."""

    def __init__(self, runtime: "Runtime", registry: "SchemaRegistry | None") -> None:
        self.rt = runtime
        self.registry = registry
        self.topic = runtime.settings.lifecycle_topic
        self._ids: dict[str, int] = {}

    async def _schema_id(self, subject_kind: str, event_type: str) -> int:
        registry = self.registry
        if registry is None:
            return 0
        cache_key = f"{subject_kind}:{event_type}"
        if cache_key not in self._ids:
            from badges.wire.registry import RegistryAuthError, key_subject, value_subject

            try:
                if subject_kind == "key":
                    self._ids[cache_key] = await registry.register(key_subject(self.topic), "string")
                else:
                    schema = self.rt.catalog[event_type].schema
                    self._ids[cache_key] = await registry.register(value_subject(self.topic, event_type), schema)
            except RegistryAuthError as exc:  # the sink holds its batch; readiness says why
                self.rt.health.set_problem("schema_registry", str(exc))
                raise
        return self._ids[cache_key]

    async def emit(self, event_type: str, learner: dict[str, Any], template_uuid: str, partition: int) -> Any:
        """Send one lifecycle event; returns the producer's delivery future."""
        snapshot = self.rt.config.snapshot()
        template = snapshot.templates.get(template_uuid)
        org = snapshot.organizations.get(template.organization) if template else None
        record = badge_record(learner, template_uuid, template, org.provider if org else "credly")
        key, value, headers = encode_kafka_event(
            event_type,
            record,
            value_schema_id=await self._schema_id("value", event_type),
            key=record["badge"]["uuid"],
            key_schema_id=await self._schema_id("key", event_type),
            time=datetime.now(timezone.utc),
            catalog=self.rt.catalog,
        )
        return await self.rt.app.producer.send(self.topic, key, value, None, None, headers)
