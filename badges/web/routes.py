"""HTTP endpoints of a worker (Faust's web server): web view, JSON API, admin API, webhook.

Views stay thin: they parse the request, call one function of a sibling module and render the
result as HTML (``templates/``) or JSON (``/api/...``). Errors are ``HttpError``s answered by
``http.error_middleware``.

| method | path | auth |
|---|---|---|
| GET | ``/`` · ``/api/dashboard`` | viewer |
| GET | ``/organizations`` · ``/api/organizations`` | viewer |
| GET | ``/templates`` · ``/api/templates`` | viewer |
| GET | ``/templates/{uuid}`` · ``/api/templates/{uuid}`` | viewer |
| GET | ``/learners`` (search) · ``/learners/{id}`` · ``/api/learners/{id}`` (routed to the owner) | viewer |
| GET | ``/badges`` · ``/api/badges`` (all workers; ``?status=&limit=&after=`` cursor pages) · ``/api/local/badges`` (this one) | viewer |
| POST | ``/api/templates/{uuid}/activate`` · ``/deactivate`` · ``/api/templates/sync`` · ``/api/badges/retry-failed`` | admin bearer |
| POST | ``/api/learners/{id}/forget`` (202: carried out by the learner's partition owner) | admin bearer |
| POST | ``/api/learners/{id}/badges/{uuid}/award`` · ``/revoke`` (body ``{"reason": ...}``) | admin bearer |
| GET, POST | ``/login`` · POST ``/logout`` (CSRF token) · GET ``/login/oauth`` (+ ``/complete``: Open edX staff) | - |
| POST | ``/credly/webhook`` | - (docs/CONTRACT.md "Credly webhook") |
| GET | ``/healthz`` (readiness, 503 with reasons) · ``/livez`` · ``/metrics`` · ``/static/...`` | - |

"viewer" is the viewer or admin bearer token, or a signed-in browser's session cookie
(``signin``); every path not listed as open in ``auth.OPEN_PATHS`` needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web
from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, ValidationError

from badges import __version__
from badges.health import crashed_services, not_ready_reasons
from badges.tables.definitions import PROGRESS
from badges.web import admin, catalog, cluster, dashboard, learners, oauth, signin, webhook
from badges.web.auth import require_admin
from badges.web.badge_index import STATUSES, SortKey, decode_cursor
from badges.web.security import security_headers
from badges.web.http import (
    HttpError,
    error_middleware,
    json_response,
    parse_learner_id,
    parse_limit,
    parse_uuid,
    read_json_object,
)
from badges.web.render import SITE, render_page
from badges.wire.envelope import learner_key

if TYPE_CHECKING:
    from badges.runtime import Runtime

STATIC = Path(__file__).parent / "static"
ADMIN_BODY_LIMIT = 4 * 1024
BADGES_DEFAULT_LIMIT, BADGES_MAX_LIMIT = 100, 1000

Build = Callable[..., Awaitable[dict[str, Any]]]


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organization: str | None = None


def _view(name: str, **methods: Any) -> type[View]:
    return type(name, (View,), methods)


def _pair(app: Any, name: str, html_path: str, api_path: str, template: str, build: Build) -> None:
    """The same data as an HTML page and as JSON."""

    async def html(self: View, request: web.Request, **kw: str) -> web.Response:
        return render_page(request, template, await build(request, **kw))

    async def api(self: View, request: web.Request, **kw: str) -> web.Response:
        return json_response(await build(request, **kw))

    app.page(html_path, name=f"{name}-html")(_view(f"{name}Page", get=html))
    app.page(api_path, name=f"{name}-api")(_view(f"{name}Api", get=api))


def _status_filter(request: web.Request) -> str | None:
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise HttpError(400, f"status must be one of {', '.join(STATUSES)}")
    return status


def _badge_page(request: web.Request) -> tuple[str | None, int, SortKey | None]:
    """status filter, page size and cursor (``after``: the ``next`` of the page before)."""
    after = request.query.get("after")
    return (_status_filter(request), parse_limit(request, BADGES_DEFAULT_LIMIT, BADGES_MAX_LIMIT),
            decode_cursor(after) if after else None)


def _assigned(app: Any) -> int:
    """The Faust consumer's partition count; 0 while it is still starting (its thread may not
    answer yet, and a health check must never fail on that)."""
    try:
        return len(app.consumer.assignment())
    except Exception:  # noqa: BLE001 - see the docstring
        return 0


def register(runtime: "Runtime") -> None:
    app = runtime.app
    me = cluster.self_url(runtime)
    web_app = app.web.web_app  # type: ignore[attr-defined]  # the aiohttp driver's, not on faust's Web interface
    web_app.middlewares.append(security_headers)
    web_app.middlewares.append(error_middleware(me))
    signin.install(web_app, runtime.settings)
    web_app[SITE] = {"app_id": runtime.settings.app_id, "url": me, "version": __version__}
    app.web.add_static("/static/", STATIC)

    # --- health and metrics ---------------------------------------------------------------------

    async def health(self: View, request: web.Request) -> web.Response:
        """Readiness: 200 only when this worker can process events, else 503 with the reasons."""
        ingest = runtime.kafka_ingest
        ingest_assigned = len(ingest.consumer.assignment()) if ingest and ingest.consumer else 0
        redis = runtime.redis_ingest
        reasons = not_ready_reasons(runtime)
        return json_response({
            "ready": not reasons,
            "reasons": reasons,
            "problems": runtime.health.problems,  # the components' own, by key
            "app_id": runtime.settings.app_id,
            "config_generation": runtime.config.generation,
            "assigned_partitions": _assigned(app),
            "ingest_partitions": ingest_assigned,
            "redis_ingest": redis.status() if redis is not None else None,
        }, status=503 if reasons else 200)

    async def live(self: View, request: web.Request) -> web.Response:
        """Liveness: 200 while no service of the worker has crashed."""
        crashed = crashed_services(runtime)
        return json_response({"alive": not crashed, "crashed": crashed}, status=503 if crashed else 200)

    async def prometheus(self: View, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app.page("/healthz", name="healthz")(_view("Health", get=health))
    app.page("/livez", name="livez")(_view("Live", get=live))
    app.page("/metrics", name="metrics")(_view("Metrics", get=prometheus))

    # --- signing in ---------------------------------------------------------------------------

    async def login_get(self: View, request: web.Request) -> web.StreamResponse:
        return await signin.login_form(request)

    async def login_post(self: View, request: web.Request) -> web.StreamResponse:
        return await signin.login_submit(request)

    async def logout_post(self: View, request: web.Request) -> web.StreamResponse:
        return await signin.logout(request)

    async def oauth_start(self: View, request: web.Request) -> web.StreamResponse:
        return await oauth.start(request)

    async def oauth_complete(self: View, request: web.Request) -> web.StreamResponse:
        return await oauth.complete(request)

    app.page("/login", name="login")(_view("Login", get=login_get, post=login_post))
    app.page(oauth.START, name="login-oauth")(_view("LoginOAuth", get=oauth_start))
    app.page(oauth.COMPLETE, name="login-oauth-complete")(_view("LoginOAuthComplete", get=oauth_complete))
    app.page("/logout", name="logout")(_view("Logout", post=logout_post))

    # --- pages and their JSON -----------------------------------------------------------------

    async def dashboard_data(request: web.Request) -> dict[str, Any]:
        return await dashboard.dashboard(runtime)

    async def organizations_data(request: web.Request) -> dict[str, Any]:
        return catalog.organizations(runtime)

    async def templates_data(request: web.Request) -> dict[str, Any]:
        return catalog.templates(runtime)

    async def template_data(request: web.Request, uuid: str) -> dict[str, Any]:
        return catalog.template_detail(runtime, parse_uuid(uuid, "template uuid"))

    async def badges_data(request: web.Request) -> dict[str, Any]:
        status, limit, after = _badge_page(request)
        query = {"limit": str(limit), **({"status": status} if status else {}),
                 **({"after": request.query["after"]} if after else {})}

        async def local() -> dict[str, Any]:
            return learners.local_badges(runtime, status, after, limit)

        answers = await cluster.fan_out(runtime, request, PROGRESS, "/api/local/badges", query, local)
        return {**learners.merge_badges(answers, runtime.settings.partitions, limit), "status": status,
                "statuses": STATUSES, "limit": limit, "after": request.query.get("after")}

    _pair(app, "Dashboard", "/", "/api/dashboard", "dashboard.html", dashboard_data)
    _pair(app, "Organizations", "/organizations", "/api/organizations", "organizations.html", organizations_data)
    _pair(app, "Templates", "/templates", "/api/templates", "templates.html", templates_data)
    _pair(app, "Template", "/templates/{uuid}", "/api/templates/{uuid}", "template.html", template_data)
    _pair(app, "Badges", "/badges", "/api/badges", "badges.html", badges_data)

    async def local_badges(self: View, request: web.Request) -> web.Response:
        status, limit, after = _badge_page(request)
        return json_response(learners.local_badges(runtime, status, after, limit))

    app.page("/api/local/badges", name="local-badges")(_view("LocalBadges", get=local_badges))

    # --- learners: answered by the worker that owns the learner's partition --------------------

    def learner_view(as_html: bool) -> Callable[..., Awaitable[web.StreamResponse]]:
        async def get(self: View, request: web.Request, learner_id: str) -> web.StreamResponse:
            lid = parse_learner_id(learner_id)

            async def local() -> web.Response:
                data = learners.learner_detail(runtime, lid)
                return render_page(request, "learner.html", data) if as_html else json_response(data)

            return await cluster.routed(runtime, request, PROGRESS, learner_key(lid), f"learner {lid}", local)

        return get

    app.page("/learners/{learner_id}", name="learner-html")(_view("LearnerPage", get=learner_view(True)))
    app.page("/api/learners/{learner_id}", name="learner-api")(_view("LearnerApi", get=learner_view(False)))

    async def find_learner(self: View, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("id", "").strip()
        if not raw:
            return render_page(request, "find_learner.html", {})
        raise web.HTTPSeeOther(f"/learners/{parse_learner_id(raw)}")

    app.page("/learners", name="find-learner")(_view("FindLearner", get=find_learner))

    # --- admin actions --------------------------------------------------------------------------

    async def admin_body(request: web.Request) -> dict[str, Any]:
        require_admin(request, runtime.settings.admin_token)
        return await read_json_object(request, ADMIN_BODY_LIMIT, optional=True)

    def switch_view(active: bool) -> Callable[..., Awaitable[web.Response]]:
        async def post(self: View, request: web.Request, uuid: str) -> web.Response:
            await admin_body(request)
            return json_response(await admin.switch(runtime, parse_uuid(uuid, "template uuid"), active))

        return post

    async def sync(self: View, request: web.Request) -> web.Response:
        body = await admin_body(request)
        try:
            req = SyncRequest.model_validate(body)
        except ValidationError as exc:
            raise HttpError(422, "body: " + "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())) from None
        org = parse_uuid(req.organization, "organization") if req.organization else None
        return json_response(await admin.sync(runtime, org))

    async def retry_failed(self: View, request: web.Request) -> web.Response:
        await admin_body(request)
        return json_response(await admin.retry_failed(runtime), status=202)

    async def forget_learner(self: View, request: web.Request, learner_id: str) -> web.Response:
        lid = parse_learner_id(learner_id)
        await admin_body(request)
        return json_response(await admin.forget(runtime, lid), status=202)

    app.page("/api/learners/{learner_id}/forget", name="forget-learner")(_view("ForgetLearner", post=forget_learner))
    app.page("/api/templates/{uuid}/activate", name="activate")(_view("Activate", post=switch_view(True)))
    app.page("/api/templates/{uuid}/deactivate", name="deactivate")(_view("Deactivate", post=switch_view(False)))
    app.page("/api/templates/sync", name="sync")(_view("SyncTemplates", post=sync))
    app.page("/api/badges/retry-failed", name="retry-failed")(_view("RetryFailed", post=retry_failed))

    def manual_view(action: str) -> Callable[..., Awaitable[web.Response]]:
        async def post(self: View, request: web.Request, learner: str, uuid: str) -> web.Response:
            body = await admin_body(request)
            reason = body.get("reason", "")
            if not isinstance(reason, str):
                raise HttpError(422, "body: reason: expected a text")
            return json_response(await admin.manual(
                runtime, action, parse_learner_id(learner), parse_uuid(uuid, "template uuid"), reason), status=202)

        return post

    for action in ("award", "revoke"):
        app.page(f"/api/learners/{{learner}}/badges/{{uuid}}/{action}", name=f"manual-{action}")(
            _view(f"Manual{action.title()}", post=manual_view(action)))

    # --- Credly webhook -------------------------------------------------------------------------

    async def credly_webhook(self: View, request: web.Request) -> web.Response:
        body = await read_json_object(request, webhook.BODY_LIMIT)
        await webhook.handle(runtime, body)
        return web.Response(status=204)

    app.page("/credly/webhook", name="credly-webhook")(_view("CredlyWebhook", post=credly_webhook))
