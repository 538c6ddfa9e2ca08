"""HTTP plumbing shared by every view: errors, request bodies, path parameters.

Errors are raised as ``HttpError`` and answered by one aiohttp middleware: JSON
``{"error": "..."}`` for the API, the webhook and non-browser clients, a small HTML page for a
browser on an HTML page. Any other exception becomes a 500 with a generic message; the
traceback goes to the worker log only, never into a response.
"""

from __future__ import annotations

import logging
import uuid as uuid_mod
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

log = logging.getLogger(__name__)

SERVED_BY = "X-Badges-Served-By"
JSON_TYPE = "application/json"


class HttpError(Exception):
    """An answer with an error status; ``message`` is shown to the client as is."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def is_api(request: web.Request) -> bool:
    path = request.path
    if path.startswith(("/api/", "/credly/")) or path in ("/api", "/metrics", "/healthz", "/livez"):
        return True
    if request.method not in ("GET", "HEAD"):
        return True
    return "text/html" not in request.headers.get("Accept", "")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    return web.Response(body=body, status=status, content_type=JSON_TYPE, charset="utf-8", headers=headers)


def error_response(request: web.Request, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    if is_api(request):
        return json_response({"error": message}, status=status, headers=headers)
    from badges.web.render import render_page

    return render_page(request, "error.html", {"status": status, "message": message}, status=status, headers=headers)


def error_middleware(served_by: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            response = await handler(request)
        except HttpError as exc:
            response = error_response(request, exc.status, exc.message, exc.headers)
        except web.HTTPException as exc:  # the router's 404/405, aiohttp's own 413, ...
            if exc.status < 400:
                raise
            message = {404: "not found", 405: f"method {request.method} not allowed on {request.path}",
                       413: "request body too large"}.get(exc.status, exc.reason)
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            response = error_response(request, exc.status, message, headers)
        except Exception:
            log.exception("unhandled error answering %s %s", request.method, request.path)
            response = error_response(request, 500, "internal error; the worker log has the details")
        if SERVED_BY not in response.headers:
            response.headers[SERVED_BY] = served_by
        return response

    return errors


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond ``limit`` bytes (before reading it all)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise HttpError(413, f"request body too large ({declared} bytes; at most {limit})")
    data = bytearray()
    while True:
        chunk = await request.content.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise HttpError(413, f"request body too large (at most {limit} bytes)")
    return bytes(data)


async def read_json_object(request: web.Request, limit: int, *, optional: bool = False) -> dict[str, Any]:
    """A JSON object body; an empty body is ``{}`` when ``optional``."""
    raw = await read_body(request, limit)
    if not raw.strip():
        if optional:
            return {}
        raise HttpError(400, "request body must be a JSON object")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise HttpError(400, "request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise HttpError(400, "request body must be a JSON object")
    return doc


def parse_uuid(value: str, what: str = "uuid") -> str:
    """The canonical form of a UUID path parameter, or 400."""
    try:
        return str(uuid_mod.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise HttpError(400, f"{what} must be a UUID") from None


def parse_learner_id(value: str) -> int:
    """An LMS user id in its canonical decimal form (the form the partitioner hashes), or 400."""
    if not value.isascii() or not value.isdigit() or len(value) > 19 or (value.startswith("0") and value != "0"):
        raise HttpError(400, "learner id must be a non-negative integer (the LMS user id)")
    return int(value)


def parse_limit(request: web.Request, default: int, maximum: int) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise HttpError(400, f"limit must be an integer from 1 to {maximum}")
    return int(raw)
