"""A local Accredible API for development and tests (not Accredible), with fault injection.

Built on the Credly emulator's machinery: the same request recording and the same faults
(``status``, ``rate_limit``, ``hang``, ``drop`` and ``store_then_*``: the credential is stored,
then the answer is lost), set through ``POST /_emulator/faults``. It serves the calls the worker
makes: ``GET issuer/all_groups``, ``POST credentials``, ``PUT``/``GET``/``DELETE credentials/{id}``
and ``POST credentials/search``. The API key (``Authorization: Bearer``) names the organization.
Unlike Credly it accepts a second credential of a group for the same recipient, so a duplicate
issue shows up instead of being refused.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from badges.credly.emulator import API, CTL, EmulatorServer, _Api, _ApiError, load_seed
from badges.credly.emulator_state import EmulatorState


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _valid_date(value: object, what: str) -> str:
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise _ApiError(422, f"{what} is not a date (YYYY-MM-DD)", [{"field": what, "message": "invalid date"}]) from None


@dataclass
class EmuGroup:
    id: int
    org: str
    name: str
    course_name: str = ""
    course_description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "course_name": self.course_name,
                "course_description": self.course_description, "course_link": None,
                "primary_design_id": None}


@dataclass
class EmuCredential:
    id: int
    org: str
    group_id: int
    recipient: dict[str, Any]
    issued_on: str
    expired_on: str | None = None
    complete: bool = True
    evidence_items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def expired(self) -> bool:
        return self.expired_on is not None and self.expired_on <= _today()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "group_id": self.group_id, "recipient": self.recipient,
                "issued_on": self.issued_on, "expired_on": self.expired_on, "expired": self.expired,
                "complete": self.complete, "evidence_items": self.evidence_items,
                "url": f"https://www.credential.net/{self.id}"}


class AccredibleState(EmulatorState):
    """Organizations (name, API key), groups and credentials; faults and recordings as Credly's."""

    def __init__(self, page_size: int = 50) -> None:
        super().__init__(page_size)
        self.groups: dict[int, EmuGroup] = {}
        self.credentials: dict[int, EmuCredential] = {}
        self._ids = itertools.count(10_000_001)

    def seed(self, doc: dict[str, Any] | None) -> None:
        """Seed format: ``{page_size?, organizations: [{uuid, name, token}], groups: [{id, org,
        name, course_name?, course_description?}]}``."""
        doc = doc or {}
        with self.lock:
            super().seed({k: v for k, v in doc.items() if k != "groups"})
            for g in doc.get("groups") or []:
                if g["org"] not in self.organizations:
                    raise KeyError(f"unknown organization {g['org']}")
                self.groups[int(g["id"])] = EmuGroup(
                    int(g["id"]), g["org"], g.get("name") or "Group", g.get("course_name") or "",
                    g.get("course_description") or "")

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.groups.clear()
            self.credentials.clear()

    def org_of(self, token: str) -> str | None:
        with self.lock:
            for org in self.organizations.values():
                if hmac.compare_digest(org.token, token):
                    return org.id
        return None

    def store_credential(self, org: str, doc: dict[str, Any]) -> EmuCredential:
        with self.lock:
            credential = EmuCredential(
                id=next(self._ids), org=org, group_id=doc["group_id"], recipient=doc["recipient"],
                issued_on=doc["issued_on"], expired_on=doc.get("expired_on"),
                complete=bool(doc.get("complete", True)), evidence_items=list(doc.get("evidence_items") or []),
            )
            self.credentials[credential.id] = credential
            return credential


class _AccredibleApi(_Api):
    state: AccredibleState

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        for method, path, handler in (
            ("GET", API + "/issuer/all_groups", self.all_groups),
            ("POST", API + "/credentials", self.create_credential),
            ("POST", API + "/credentials/search", self.search_credentials),
            ("GET", API + "/credentials/{credential}", self.get_credential),
            ("PUT", API + "/credentials/{credential}", self.update_credential),
            ("DELETE", API + "/credentials/{credential}", self.delete_credential),
        ):
            app.router.add_route(method, path, handler)
        self.add_control_routes(app)
        app.router.add_get(CTL + "/credentials", self.ctl_credentials)
        return app

    def _org(self, request: web.Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        org = self.state.org_of(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if org is None:
            raise _ApiError(401, "Invalid API key")
        return org

    def _credential(self, request: web.Request, org: str) -> EmuCredential:
        try:
            credential = self.state.credentials.get(int(request.match_info["credential"]))
        except ValueError:
            credential = None
        if credential is None or credential.org != org:
            raise _ApiError(404, "Credential not found")
        return credential

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            doc = await request.json()
        except ValueError:
            raise _ApiError(400, "body is not JSON") from None
        if not isinstance(doc, dict):
            raise _ApiError(400, "body is not a JSON object")
        return doc

    async def all_groups(self, request: web.Request) -> web.Response:
        org = self._org(request)
        try:
            # at most the seeded page size, as a server with a maximum page size would
            per = max(1, min(int(request.query.get("page_size") or self.state.page_size), self.state.page_size))
            page = max(1, int(request.query.get("page") or 1))
        except ValueError:
            raise _ApiError(400, "page and page_size must be integers") from None
        with self.state.lock:
            groups = sorted((g for g in self.state.groups.values() if g.org == org), key=lambda g: g.id)
        total = max(1, math.ceil(len(groups) / per))
        return web.json_response({
            "groups": [g.to_json() for g in groups[(page - 1) * per: page * per]],
            "meta": {"current_page": page, "next_page": page + 1 if page < total else None,
                     "prev_page": page - 1 if page > 1 else None, "total_pages": total,
                     "total_count": len(groups), "page_size": per},
        })

    async def create_credential(self, request: web.Request) -> web.Response:
        org = self._org(request)
        doc = (await self._body(request)).get("credential")
        if not isinstance(doc, dict):
            raise _ApiError(422, "credential is required", [{"field": "credential", "message": "missing"}])
        group_id = doc.get("group_id")
        group = self.state.groups.get(group_id) if isinstance(group_id, int) else None
        if group is None or group.org != org:
            raise _ApiError(422, "group_id is not a group of this issuer", [{"field": "group_id", "message": "invalid"}])
        recipient = doc.get("recipient")
        if not isinstance(recipient, dict) or "@" not in str(recipient.get("email") or ""):
            raise _ApiError(422, "recipient email is required", [{"field": "recipient.email", "message": "invalid"}])
        fields = {"group_id": group.id, "recipient": {"name": recipient.get("name"), "email": recipient["email"]},
                  "issued_on": _valid_date(doc.get("issued_on") or _today(), "issued_on"),
                  "complete": doc.get("complete", True), "evidence_items": doc.get("evidence_items")}
        if doc.get("expired_on"):
            fields["expired_on"] = _valid_date(doc["expired_on"], "expired_on")
        return web.json_response({"credential": self.state.store_credential(org, fields).to_json()})

    async def get_credential(self, request: web.Request) -> web.Response:
        return web.json_response({"credential": self._credential(request, self._org(request)).to_json()})

    async def update_credential(self, request: web.Request) -> web.Response:
        org = self._org(request)
        credential = self._credential(request, org)
        doc = (await self._body(request)).get("credential") or {}
        with self.state.lock:
            if "expired_on" in doc:
                credential.expired_on = None if doc["expired_on"] is None else _valid_date(doc["expired_on"], "expired_on")
        return web.json_response({"credential": credential.to_json()})

    async def delete_credential(self, request: web.Request) -> web.Response:
        credential = self._credential(request, self._org(request))
        with self.state.lock:
            self.state.credentials.pop(credential.id, None)
        return web.json_response({"credential": credential.to_json()})

    async def search_credentials(self, request: web.Request) -> web.Response:
        org = self._org(request)
        doc = await self._body(request)
        email = str(doc.get("email") or "").casefold()
        with self.state.lock:
            found = [c.to_json() for c in self.state.credentials.values()
                     if c.org == org and (doc.get("group_id") is None or c.group_id == doc.get("group_id"))
                     and (not email or str(c.recipient.get("email") or "").casefold() == email)]
        return web.json_response({"credentials": found})

    async def ctl_credentials(self, request: web.Request) -> web.Response:
        with self.state.lock:
            return web.json_response([{**c.to_json(), "organization_id": c.org} for c in self.state.credentials.values()])

    def _summary(self) -> dict[str, Any]:
        with self.state.lock:  # never the keys
            return {"organizations": [o.to_json() for o in self.state.organizations.values()],
                    "groups": len(self.state.groups), "credentials": len(self.state.credentials)}


class AccredibleEmulatorServer(EmulatorServer):
    service = "Accredible"
    state: AccredibleState
    state_class = AccredibleState
    api_class = _AccredibleApi


DEMO_ORG = "5e1d0c2a-0000-4000-8000-00000000acc1"  # config/sample-accredible.yaml names it
DEMO_TOKEN = "acc-demo-token"


def demo_seed() -> dict[str, Any]:
    """What `badges dev --provider accredible` starts with: one issuer, two groups."""
    return {
        "organizations": [{"uuid": DEMO_ORG, "name": "Demo Accredible issuer", "token": DEMO_TOKEN}],
        "groups": [
            {"id": 101, "org": DEMO_ORG, "name": "Demo course certificate",
             "course_name": "Demo course", "course_description": "Passed the demo course"},
            {"id": 102, "org": DEMO_ORG, "name": "Demo program certificate"},
        ],
    }


def main(host: str = "127.0.0.1", port: int = 8809, seed_path: str | None = None) -> None:
    """Entry point for ``badges accredible-emulator``: blocks until Ctrl-C."""
    seed = load_seed(seed_path) if seed_path else demo_seed()
    print(f"Accredible emulator: http://{host}:{port}{API}/  (control: /_emulator/...)")
    for org in seed.get("organizations") or []:
        print(f"  organization {org.get('uuid') or org.get('id')}  {org.get('name', '')}")

    async def serve() -> None:
        server = AccredibleEmulatorServer(seed, host=host, port=port)
        await server.start()
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
