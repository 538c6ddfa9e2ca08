"""A Credly sandbox emulator: a real aiohttp server with in-memory state (the one allowed fake).

It answers the Credly endpoints we use (docs/CONTRACT.md "Badge provider calls") under ``/v1/`` the way Credly does (Basic
auth, ``data``/``metadata`` envelopes, absolute ``next_page_url``, ``key::value|...`` filters,
422 on duplicates) and adds control endpoints under ``/_emulator/`` (not part of Credly) to seed
it, inspect what it received, emit webhook events and inject faults, including "store then
drop/hang": the badge is stored but the client never sees the answer (the unknown outcome).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import math
import re
import socket
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import aiohttp
from aiohttp import web

from .emulator_state import STORE_THEN, EmulatorState, Fault
from .models import ISSUED_AT_FORMAT

log = logging.getLogger(__name__)

API = "/v1"
CTL = "/_emulator"
DEMO_ORG = "0b8a3f0e-0000-4000-8000-000000000001"
DEMO_TOKEN = "dev-credly-token"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REQUIRED = ("recipient_email", "issued_to_first_name", "issued_to_last_name",
             "badge_template_id", "issued_at")


def demo_seed() -> dict[str, Any]:
    """One organization (the README's example uuid) with three active and one archived template."""
    return {
        "organizations": [{"uuid": DEMO_ORG, "name": "Demo Organization", "token": DEMO_TOKEN}],
        "templates": [
            {"uuid": "7d4f6a52-0000-4000-8000-0000000000aa", "org": DEMO_ORG,
             "name": "Demo Course Completion", "description": "Completed the Demo course",
             "image_url": "https://example.com/badges/demo.png", "state": "active"},
            {"uuid": "7d4f6a52-0000-4000-8000-0000000000bb", "org": DEMO_ORG,
             "name": "Demo Enthusiast", "description": "Enrolled in the Demo course",
             "image_url": "https://example.com/badges/enthusiast.png", "state": "active"},
            {"uuid": "7d4f6a52-0000-4000-8000-0000000000cc", "org": DEMO_ORG,
             "name": "Retired Badge", "description": "No longer issued",
             "image_url": None, "state": "archived"},
            {"uuid": "7d4f6a52-0000-4000-8000-0000000000dd", "org": DEMO_ORG,
             "name": "Demo Graduate", "description": "The Demo badge and two electives",
             "image_url": "https://example.com/badges/graduate.png", "state": "active"},
        ],
    }


class _ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors

    def response(self) -> web.Response:
        data: dict[str, Any] = {"message": self.message}
        if self.errors:
            data["errors"] = self.errors
        return web.json_response({"data": data, "metadata": {}}, status=self.status)


def _parse_filter(text: str | None, allowed: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (text or "").split("|"):
        if not part:
            continue
        key, sep, value = part.partition("::")
        if not sep or key not in allowed:
            raise _ApiError(400, f"invalid filter {part!r}; keys: {', '.join(sorted(allowed))}")
        out[key] = value
    return out


def _states(value: str | None) -> set[str] | None:
    return {s.strip() for s in value.split(",") if s.strip()} if value else None


class _Api:
    """Request handlers; ``released`` ends every emulated hang (set on shutdown)."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.released: asyncio.Event | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        org = API + "/organizations/{org}"
        routes = [
            ("GET", org, self.get_organization),
            ("GET", org + "/badge_templates", self.list_templates),
            ("GET", org + "/badge_templates/{template}", self.get_template),
            ("GET", org + "/badges", self.list_badges),
            ("POST", org + "/badges", self.issue_badge),
            ("GET", org + "/badges/{badge}", self.get_badge),
            ("PUT", org + "/badges/{badge}/revoke", self.revoke_badge),
            ("GET", org + "/events/{event}", self.get_event),
        ]
        for method, path, handler in routes:  # Credly (Rails) accepts both spellings
            app.router.add_route(method, path, handler)
            app.router.add_route(method, path + "/", handler)
        self.add_control_routes(app)
        app.router.add_post(CTL + "/templates", self.ctl_template)
        app.router.add_get(CTL + "/badges", self.ctl_badges)
        app.router.add_post(CTL + "/events", self.ctl_event)
        return app

    def add_control_routes(self, app: web.Application) -> None:
        """The control endpoints every emulator has: health, seed, reset, faults, requests."""
        app.router.add_get(CTL + "/health", self.ctl_health)
        app.router.add_post(CTL + "/seed", self.ctl_seed)
        app.router.add_post(CTL + "/reset", self.ctl_reset)
        app.router.add_get(CTL + "/faults", self.ctl_faults)
        app.router.add_post(CTL + "/faults", self.ctl_add_fault)
        app.router.add_delete(CTL + "/faults", self.ctl_clear_faults)
        app.router.add_get(CTL + "/requests", self.ctl_requests)
        app.router.add_delete(CTL + "/requests", self.ctl_clear_requests)

    # --- middleware: record, faults, errors ----------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith(API + "/"):
            return await handler(request)
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        entry = self.state.record(request.method, request.path, dict(request.query), body,
                                  request.match_info.get("org"))
        fault = self.state.take_fault(request.method, request.path)
        entry.fault = fault.mode if fault else None
        if fault is not None and fault.mode not in STORE_THEN:
            response = await self._fault_before(request, fault)
            entry.status = None if fault.mode == "drop" else response.status
            return response
        try:
            response = await handler(request)
        except _ApiError as exc:
            response = exc.response()
        except web.HTTPException as exc:
            entry.status = exc.status
            raise
        entry.status = response.status  # for store_then_*: what was stored, not what was seen
        if fault is not None:
            return await self._fault_after(request, fault, response)
        return response

    async def _hang(self, seconds: float) -> None:
        assert self.released is not None
        try:
            await asyncio.wait_for(self.released.wait(), seconds)
        except TimeoutError:
            pass

    def _drop(self, request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=503)  # never reaches the client

    async def _fault_before(self, request: web.Request, fault: Fault) -> web.Response:
        if fault.mode == "rate_limit":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return web.json_response({"data": {"message": "Rate limit exceeded"}, "metadata": {}},
                                     status=429, headers=headers)
        if fault.mode == "hang":
            await self._hang(fault.hang_s)
            return web.Response(status=503)
        if fault.mode == "drop":
            return self._drop(request)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        return web.json_response({"data": {"message": f"Emulated error {fault.status}"}},
                                 status=fault.status, headers=headers)

    async def _fault_after(self, request: web.Request, fault: Fault,
                           response: web.StreamResponse) -> web.StreamResponse:
        if fault.mode == "store_then_drop":
            return self._drop(request)
        if fault.mode == "store_then_status":
            return await self._fault_before(request, Fault("status", status=fault.status,
                                                           retry_after=fault.retry_after))
        await self._hang(fault.hang_s)
        return response

    # --- auth ------------------------------------------------------------------------------

    def _authorize(self, request: web.Request) -> str:
        """Basic auth as Credly: base64(token), or base64("token:") (token as user name)."""
        org_id = request.match_info["org"]
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise _ApiError(401, "Authentication required")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _ApiError(401, "Invalid authorization token") from None
        candidates = {decoded, decoded.partition(":")[0]}
        with self.state.lock:
            org = self.state.organizations.get(org_id)
            if org is not None and any(hmac.compare_digest(c, org.token) for c in candidates):
                return org_id
            known = any(o.token in candidates for o in self.state.organizations.values())
        if not known:
            raise _ApiError(401, "Invalid authorization token")
        if org is None:
            raise _ApiError(404, "Organization not found")
        raise _ApiError(403, "You are not authorized to access this organization")

    def _paginate(self, request: web.Request, items: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            per = max(1, int(request.query.get("per") or self.state.page_size))
            page = max(1, int(request.query.get("page") or 1))
        except ValueError:
            raise _ApiError(400, "page and per must be integers") from None
        total_pages = max(1, math.ceil(len(items) / per))
        chunk = items[(page - 1) * per: page * per]

        def url(number: int) -> str:
            return str(request.url.update_query(page=str(number)))  # absolute, filter kept

        return {"data": chunk, "metadata": {
            "count": len(chunk), "current_page": page, "total_count": len(items),
            "total_pages": total_pages, "per": per,
            "previous_page_url": url(page - 1) if page > 1 else None,
            "next_page_url": url(page + 1) if page < total_pages else None,
        }}

    # --- Credly API ------------------------------------------------------------------------

    async def get_organization(self, request: web.Request) -> web.Response:
        org = self._authorize(request)
        return web.json_response({"data": self.state.organizations[org].to_json()})

    async def list_templates(self, request: web.Request) -> web.Response:
        org = self._authorize(request)
        flt = _parse_filter(request.query.get("filter"), {"state", "name", "query"})
        states = _states(flt.get("state"))
        name, query = flt.get("name", "").casefold(), flt.get("query", "").casefold()
        with self.state.lock:
            items = [
                self.state.template_json(t.id) or {} for t in self.state.templates.values()
                if t.org == org and (states is None or t.state in states)
                and name in t.name.casefold()
                and (query in t.name.casefold() or query in t.description.casefold())
            ]
        return web.json_response(self._paginate(request, items))

    async def get_template(self, request: web.Request) -> web.Response:
        org = self._authorize(request)
        tpl = self.state.templates.get(request.match_info["template"])
        if tpl is None or tpl.org != org:
            raise _ApiError(404, "Badge template not found")
        return web.json_response({"data": self.state.template_json(tpl.id)})

    async def list_badges(self, request: web.Request) -> web.Response:
        org = self._authorize(request)
        flt = _parse_filter(
            request.query.get("filter"),
            {"recipient_email", "recipient_email_all", "badge_template_id", "state",
             "issuer_earner_id"},
        )
        email = (flt.get("recipient_email") or flt.get("recipient_email_all") or "").casefold()
        template, states = flt.get("badge_template_id"), _states(flt.get("state"))
        earner = flt.get("issuer_earner_id")
        items = [
            self.state.badge_json(b) for b in self.state.list_badges(org)
            if (not email or b.recipient_email.casefold() == email)
            and (earner is None or b.issuer_earner_id == earner)
            and (template is None or b.template_id == template)
            and (states is None or b.state in states)
        ]
        return web.json_response(self._paginate(request, items))

    async def get_badge(self, request: web.Request) -> web.Response:
        org = self._authorize(request)
        badge = self.state.badges.get(request.match_info["badge"])
        if badge is None or badge.org != org:
            raise _ApiError(404, "Badge not found")
        return web.json_response({"data": self.state.badge_json(badge)})

    async def issue_badge(self, request: web.Request) -> web.Response:
        org = self._authorize(request)
        try:
            body = await request.json()
        except ValueError:
            raise _ApiError(400, "Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "Request body must be a JSON object")
        errors = [{"attribute": f, "messages": ["can't be blank"]} for f in _REQUIRED
                  if not isinstance(body.get(f), str) or not body[f].strip()]
        if not errors:
            if not _EMAIL.match(body["recipient_email"]):
                errors.append({"attribute": "recipient_email", "messages": ["is invalid"]})
            for name in ("issued_at", "expires_at"):
                if name == "expires_at" and body.get(name) is None:
                    continue
                try:
                    datetime.strptime(str(body[name]), ISSUED_AT_FORMAT)
                except ValueError:
                    errors.append({"attribute": name,
                                   "messages": ["is invalid (expected YYYY-MM-DD HH:MM:SS +ZZZZ)"]})
            if not isinstance(body.get("evidence", []), list):
                errors.append({"attribute": "evidence", "messages": ["must be a list"]})
        if errors:
            raise _ApiError(422, "Validation failed", errors)
        with self.state.lock:
            tpl = self.state.templates.get(body["badge_template_id"])
            if tpl is None or tpl.org != org:
                raise _ApiError(422, "Badge template not found",
                                [{"attribute": "badge_template_id", "messages": ["is invalid"]}])
            if tpl.state != "active":
                raise _ApiError(422, f"Badge template is {tpl.state}; only active templates "
                                     "can issue badges")
            if self.state.live_badge(org, tpl.id, body["recipient_email"],
                                     body["issued_at"]) is not None:
                raise _ApiError(422, "User already has this badge",
                                [{"attribute": "badge_template_id",
                                  "messages": ["has already been issued to this recipient"]}])
            badge = self.state.store_badge(org, body)
        return web.json_response({"data": self.state.badge_json(badge), "metadata": {}},
                                 status=201)

    async def revoke_badge(self, request: web.Request) -> web.Response:
        org = self._authorize(request)
        try:
            body = await request.json() if await request.read() else {}
        except ValueError:
            raise _ApiError(400, "Request body is not valid JSON") from None
        with self.state.lock:
            badge = self.state.badges.get(request.match_info["badge"])
            if badge is None or badge.org != org:
                raise _ApiError(404, "Badge not found")
            if badge.state == "revoked":
                raise _ApiError(422, "Badge has already been revoked")
            badge.state, badge.revoked_at = "revoked", datetime.now().astimezone().isoformat()
            badge.revoke_reason = (body or {}).get("reason")
            badge.updated_at = badge.revoked_at
        return web.json_response({"data": self.state.badge_json(badge), "metadata": {}})

    async def get_event(self, request: web.Request) -> web.Response:
        org = self._authorize(request)
        event = self.state.events.get(request.match_info["event"])
        if event is None or event.org != org:
            raise _ApiError(404, "Event not found")
        return web.json_response({"data": event.to_json()})

    # --- control endpoints (not Credly) ------------------------------------------------------

    async def ctl_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ctl_seed(self, request: web.Request) -> web.Response:
        self.state.seed(await request.json())
        return web.json_response(self._summary())

    async def ctl_reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return web.json_response(self._summary())

    async def ctl_template(self, request: web.Request) -> web.Response:
        doc = await request.json()
        fields = {k: doc[k] for k in ("name", "description", "image_url", "state") if k in doc}
        try:
            tpl = self.state.upsert_template(doc.get("uuid") or doc["id"], doc["org"], **fields)
        except KeyError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.state.template_json(tpl.id))

    async def ctl_faults(self, request: web.Request) -> web.Response:
        with self.state.lock:
            return web.json_response([vars(f) for f in self.state.faults])

    async def ctl_add_fault(self, request: web.Request) -> web.Response:
        try:
            fault = self.state.add_fault(Fault(**await request.json()))
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(vars(fault), status=201)

    async def ctl_clear_faults(self, request: web.Request) -> web.Response:
        self.state.clear_faults()
        return web.json_response([])

    async def ctl_requests(self, request: web.Request) -> web.Response:
        entries = self.state.recorded(request.query.get("method"), request.query.get("path"))
        return web.json_response([e.to_json() for e in entries])

    async def ctl_clear_requests(self, request: web.Request) -> web.Response:
        self.state.clear_requests()
        return web.json_response([])

    async def ctl_badges(self, request: web.Request) -> web.Response:
        badges = self.state.list_badges(request.query.get("org"))
        return web.json_response([{**self.state.badge_json(b), "organization_id": b.org}
                                  for b in badges])

    async def ctl_event(self, request: web.Request) -> web.Response:
        """Body: organization_id, event_type, badge_template_id?, changes?, deliver_to?."""
        doc = await request.json()
        try:
            event = self.state.create_event(doc["organization_id"], doc["event_type"],
                                            doc.get("badge_template_id"), doc.get("changes"))
        except KeyError as exc:
            return web.json_response({"error": f"missing or unknown {exc}"}, status=400)
        result: dict[str, Any] = {"notification": event.notification(), "delivery_status": None}
        if doc.get("deliver_to"):
            result["delivery_status"] = await deliver_webhook(doc["deliver_to"],
                                                              event.notification())
        return web.json_response(result, status=201)

    def _summary(self) -> dict[str, Any]:
        with self.state.lock:  # never the tokens
            return {"organizations": [o.to_json() for o in self.state.organizations.values()],
                    "templates": len(self.state.templates), "badges": len(self.state.badges),
                    "page_size": self.state.page_size}


async def deliver_webhook(url: str, notification: dict[str, Any], timeout_s: float = 10.0) -> int:
    """POST a notification as Credly would; returns the receiver's status."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        async with session.post(url, json=notification) as resp:
            return resp.status


class EmulatorServer:
    """Run the emulator on a loopback port (0: a free one), in this loop or a background thread.

    Subclasses emulate another service with their own state and handlers (the Accredible one)."""

    service = "Credly"
    state_class: type[EmulatorState] = EmulatorState
    api_class: type[_Api] = _Api

    def __init__(self, seed: dict[str, Any] | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, page_size: int | None = None) -> None:
        self.state = self.state_class()
        self.state.seed(seed)
        if page_size:
            self.state.page_size = page_size
        self.host, self.port = host, port
        self._api = self.api_class(self.state)
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The base to give the client (``BADGES_CREDLY_API_URL`` / ``BADGES_ACCREDIBLE_API_URL``)."""
        return f"{self.url}{API}/"

    async def start(self) -> Self:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._api.released = asyncio.Event()
        self._runner = web.AppRunner(self._api.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        log.info("%s emulator listening on %s", self.service, self.api_url)
        return self

    async def stop(self) -> None:
        if self._api.released is not None:
            self._api.released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EmulatorServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self) -> Self:
        """For synchronous callers: the server gets its own loop in a daemon thread."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"{self.service.lower()}-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout)
        self._thread = None


async def serve(host: str = "127.0.0.1", port: int = 8765,
                seed: dict[str, Any] | None = None) -> None:
    """Run until cancelled; ``seed=None`` loads ``demo_seed()``."""
    server = EmulatorServer(demo_seed() if seed is None else seed, host=host, port=port)
    await server.start()
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def load_seed(path: str | Path) -> dict[str, Any]:
    """JSON or YAML (YAML is a superset of JSON, so one parser reads both)."""
    import yaml

    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: the seed must be a mapping with organizations/templates")
    return doc


def main(host: str = "127.0.0.1", port: int = 8765, seed_path: str | Path | None = None) -> None:
    """Entry point for ``badges credly-emulator``: blocks until Ctrl-C."""
    seed = load_seed(seed_path) if seed_path else None
    shown = seed or demo_seed()
    print(f"Credly emulator: http://{host}:{port}{API}/  (control: /_emulator/...)")
    for org in shown.get("organizations") or []:
        print(f"  organization {org.get('uuid') or org.get('id')}  {org.get('name', '')}")
    try:
        asyncio.run(serve(host, port, seed))
    except KeyboardInterrupt:
        pass
