"""In-memory state of the Credly emulator, free of HTTP so that tests can drive it directly.

Thread-safe (one lock) because a test may run the server in a background thread and inspect or
seed it from the test thread.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from badges.credly.models import ISSUED_AT_FORMAT

FaultMode = Literal[
    "status", "rate_limit", "hang", "drop", "store_then_status", "store_then_hang",
    "store_then_drop",
]
FAULT_MODES: tuple[str, ...] = get_args(FaultMode)
STORE_THEN = ("store_then_status", "store_then_hang", "store_then_drop")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class EmuOrganization:
    id: str
    name: str
    token: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass
class EmuTemplate:
    id: str
    org: str
    name: str
    description: str = ""
    image_url: str | None = None
    state: str = "active"
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    def to_json(self, owner_name: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "description": self.description,
            "image_url": self.image_url, "state": self.state,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "owner": {"id": self.org, "type": "Organization", "name": owner_name},
        }


def _expired_by(badge: "EmuBadge", at: str | None) -> bool:
    if badge.expires_at is None or at is None:
        return False
    return datetime.strptime(badge.expires_at, ISSUED_AT_FORMAT) <= datetime.strptime(
        at, ISSUED_AT_FORMAT)


@dataclass
class EmuBadge:
    id: str
    org: str
    template_id: str
    recipient_email: str
    issued_to_first_name: str
    issued_to_last_name: str
    issued_at: str
    state: str = "pending"
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    revoked_at: str | None = None
    revoke_reason: str | None = None
    # the LMS user id, the expiry and the evidence sent with the issue call
    issuer_earner_id: str | None = None
    expires_at: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, template: dict[str, Any] | None) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("org")
        doc.pop("template_id")
        doc["badge_template"] = template or {"id": self.template_id}
        return doc


@dataclass
class EmuEvent:
    id: str
    org: str
    event_type: str
    occurred_at: str
    badge_template: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "organization_id": self.org, "event_type": self.event_type,
            "occurred_at": self.occurred_at, "badge_template": self.badge_template,
        }

    def notification(self) -> dict[str, Any]:
        """What Credly POSTs to the webhook URL: ids only, details are fetched."""
        return {
            "id": self.id, "organization_id": self.org, "event_type": self.event_type,
            "occurred_at": self.occurred_at,
        }


@dataclass
class Fault:
    """Applies to the next ``times`` API calls matching ``method`` and the ``path`` regex."""

    mode: FaultMode
    times: int = 1
    method: str | None = None
    path: str | None = None
    status: int = 500
    retry_after: str | None = None
    hang_s: float = 60.0

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}; one of {', '.join(FAULT_MODES)}")
        if self.times < 1:
            raise ValueError("times must be >= 1")
        if self.method:
            self.method = self.method.upper()

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method.upper():
            return False
        return not self.path or re.search(self.path, path) is not None


@dataclass
class RecordedRequest:
    seq: int
    at: float  # time.monotonic() when the request arrived
    method: str
    path: str
    query: dict[str, str]
    body: Any
    org: str | None
    status: int | None = None
    fault: str | None = None
    # Wall-clock arrival (time.time()): comparable with event times, e.g. for latency figures.
    received: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class EmulatorState:
    def __init__(self, page_size: int = 50) -> None:
        self.lock = threading.RLock()
        self.page_size = page_size
        self.organizations: dict[str, EmuOrganization] = {}
        self.templates: dict[str, EmuTemplate] = {}
        self.badges: dict[str, EmuBadge] = {}
        # (org, template, casefolded email) -> badges stored for it: a duplicate check that
        # stays O(1) with the many badges of a benchmark.
        self._by_recipient: dict[tuple[str, str, str], list[EmuBadge]] = {}
        self.events: dict[str, EmuEvent] = {}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []

    # --- seeding ---------------------------------------------------------------------------

    def seed(self, doc: dict[str, Any] | None) -> None:
        """Seed format: ``{page_size?, organizations: [{uuid, name, token}],
        templates: [{uuid, org, name, description, image_url, state}]}``."""
        doc = doc or {}
        with self.lock:
            if doc.get("page_size"):
                self.page_size = int(doc["page_size"])
            for org in doc.get("organizations") or []:
                self.add_organization(
                    org.get("uuid") or org["id"], org.get("name") or "Organization",
                    org.get("token") or org["api_key"],
                )
            for tpl in doc.get("templates") or []:
                self.upsert_template(
                    tpl.get("uuid") or tpl["id"],
                    tpl.get("org") or tpl.get("organization") or tpl["organization_id"],
                    name=tpl.get("name") or "Template",
                    description=tpl.get("description") or "",
                    image_url=tpl.get("image_url"),
                    state=tpl.get("state") or "active",
                )

    def reset(self) -> None:
        with self.lock:
            self.organizations.clear()
            self.templates.clear()
            self.badges.clear()
            self._by_recipient.clear()
            self.events.clear()
            self.faults.clear()
            self.requests.clear()

    def add_organization(self, org_id: str, name: str, token: str) -> EmuOrganization:
        with self.lock:
            org = self.organizations[org_id] = EmuOrganization(org_id, name, token)
            return org

    def upsert_template(self, template_id: str, org: str, **fields: Any) -> EmuTemplate:
        with self.lock:
            if org not in self.organizations:
                raise KeyError(f"unknown organization {org}")
            current = self.templates.get(template_id)
            if current is None:
                current = self.templates[template_id] = EmuTemplate(
                    template_id, org, fields.pop("name", "Template")
                )
            for key, value in fields.items():
                if value is not None or key == "image_url":
                    setattr(current, key, value)
            current.updated_at = _now()
            return current

    def template_json(self, template_id: str) -> dict[str, Any] | None:
        with self.lock:
            tpl = self.templates.get(template_id)
            if tpl is None:
                return None
            owner = self.organizations.get(tpl.org)
            return tpl.to_json(owner.name if owner else None)

    def badge_json(self, badge: EmuBadge) -> dict[str, Any]:
        return badge.to_json(self.template_json(badge.template_id))

    # --- faults and recording ----------------------------------------------------------------

    def add_fault(self, fault: Fault | None = None, **kwargs: Any) -> Fault:
        fault = fault or Fault(**kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def record(self, method: str, path: str, query: dict[str, str], body: Any,
               org: str | None) -> RecordedRequest:
        with self.lock:
            entry = RecordedRequest(
                len(self.requests) + 1, time.monotonic(), method, path, query, body, org,
                received=time.time(),
            )
            self.requests.append(entry)
            return entry

    def recorded(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded API calls, optionally filtered by method and a path regex."""
        with self.lock:
            return [
                r for r in self.requests
                if (method is None or r.method == method.upper())
                and (path is None or re.search(path, r.path))
            ]

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    # --- badges and events ---------------------------------------------------------------

    def list_badges(self, org: str | None = None) -> list[EmuBadge]:
        with self.lock:
            return [b for b in self.badges.values() if org is None or b.org == org]

    def live_badge(self, org: str, template_id: str, email: str,
                   at: str | None = None) -> EmuBadge | None:
        """The recipient's badge of the template that is neither revoked nor expired by ``at``
        (an ``issued_at``; a badge expired by then may be earned again)."""
        with self.lock:
            for badge in self._by_recipient.get((org, template_id, email.casefold()), ()):
                if badge.state != "revoked" and not _expired_by(badge, at):
                    return badge
        return None

    def store_badge(self, org: str, body: dict[str, Any]) -> EmuBadge:
        with self.lock:
            badge = EmuBadge(
                id=str(uuid.uuid4()), org=org, template_id=body["badge_template_id"],
                recipient_email=body["recipient_email"],
                issued_to_first_name=body["issued_to_first_name"],
                issued_to_last_name=body["issued_to_last_name"], issued_at=body["issued_at"],
                issuer_earner_id=body.get("issuer_earner_id"), expires_at=body.get("expires_at"),
                evidence=list(body.get("evidence") or []),
            )
            self.badges[badge.id] = badge
            key = (org, badge.template_id, badge.recipient_email.casefold())
            self._by_recipient.setdefault(key, []).append(badge)
            return badge

    def create_event(
        self, org: str, event_type: str, template_id: str | None = None,
        changes: dict[str, Any] | None = None,
    ) -> EmuEvent:
        """Record a Credly event; template changes are applied first, deletion last."""
        with self.lock:
            if org not in self.organizations:
                raise KeyError(f"unknown organization {org}")
            snapshot = None
            if template_id is not None:
                if changes or template_id not in self.templates:
                    self.upsert_template(template_id, org, **(changes or {}))
                snapshot = self.template_json(template_id)
                if event_type == "badge_template.deleted":
                    self.templates.pop(template_id, None)
            event = EmuEvent(str(uuid.uuid4()), org, event_type, _now(), snapshot)
            self.events[event.id] = event
            return event
