"""``POST /credly/webhook`` (docs/CONTRACT.md "Credly webhook"): Credly's template notifications applied to the configuration.

Credly cannot send our bearer token, so the body is trusted for two ids only: the event id and
the organization id. The event itself is fetched from Credly with that organization's token,
and only what Credly answers is applied (``credly.sync.apply_template_event``).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from badges import metrics
from badges.credly.errors import CredlyError
from badges.credly.sync import TEMPLATE_EVENTS, apply_template_event
from badges.web.admin import publish_entities, wait_applied
from badges.web.http import HttpError, parse_uuid

if TYPE_CHECKING:
    from badges.runtime import Runtime

log = logging.getLogger(__name__)

BODY_LIMIT = 64 * 1024
_EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def _count(event_type: str, outcome: str) -> None:
    label = event_type if event_type in TEMPLATE_EVENTS else ("other" if event_type else "not_fetched")
    metrics.WEBHOOK_EVENTS.labels(label, outcome).inc()


def parse_notification(body: dict[str, Any]) -> tuple[str, str]:
    """(organization uuid, event id) from the notification; everything else is ignored."""
    event_id, org = body.get("id"), body.get("organization_id")
    if not isinstance(event_id, str) or not isinstance(org, str):
        _count("", "bad_request")
        raise HttpError(400, "the notification needs string fields 'id' and 'organization_id'")
    if not _EVENT_ID.match(event_id):
        _count("", "bad_request")
        raise HttpError(400, "the notification's 'id' is not a Credly event id")
    try:
        org_uuid = parse_uuid(org, "organization_id")
    except HttpError:
        _count("", "bad_request")
        raise
    return org_uuid, event_id


async def handle(runtime: "Runtime", body: dict[str, Any]) -> None:
    """Apply one notification; raises HttpError for the answers other than 204."""
    org, event_id = parse_notification(body)
    entity = runtime.config.snapshot().organizations.get(org)
    if entity is None or entity.provider != "credly":
        # an Accredible organization's key must never be sent to Credly
        _count("", "unknown_organization")
        raise HttpError(404, f"organization {org} is not configured" if entity is None
                        else f"organization {org} issues through {entity.provider}, not Credly")
    try:
        event = await runtime.credly.get_event(org, event_id)
    except CredlyError as exc:
        _count("", "credly_error")
        log.warning("webhook: cannot fetch Credly event %s of organization %s: %s", event_id, org, exc)
        raise HttpError(502, f"could not fetch event {event_id} from Credly: {exc}") from None
    if event.organization_id and event.organization_id.lower() != org:
        _count(event.event_type, "credly_error")
        raise HttpError(502, f"Credly answered event {event_id} for another organization")
    if event.event_type not in TEMPLATE_EVENTS:
        _count(event.event_type, "ignored")
        log.info("webhook: Credly event %s of type %r ignored (not a template event)", event_id, event.event_type)
        return
    if event.badge_template is None:
        _count(event.event_type, "ignored")
        log.warning("webhook: Credly event %s (%s) carries no badge_template; nothing applied", event_id, event.event_type)
        return
    snapshot = runtime.config.snapshot()
    template = apply_template_event(snapshot, org, event.event_type, event.badge_template)
    if template is None:
        _count(event.event_type, "unchanged")
        log.info("webhook: %s for template %s: nothing to change", event.event_type, event.badge_template.id)
        return
    await publish_entities(runtime, [template])
    await wait_applied(runtime, [template])
    _count(event.event_type, "applied")
    log.info("webhook: %s applied to template %s (credly_state %s, active %s)", event.event_type,
             template.uuid, template.credly_state, template.is_active)
