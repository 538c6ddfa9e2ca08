"""Server-rendered HTML: jinja2 templates from ``badges/web/templates``, autoescaped."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from badges.web.auth import CSRF, ROLE

SITE: web.AppKey[dict[str, Any]] = web.AppKey("badges_site", dict)


def _from_us(value: Any) -> str:
    """A microsecond timestamp as a readable UTC time."""
    if value in (None, ""):
        return ""
    try:
        moment = datetime.fromtimestamp(int(value) / 1e6, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _when(value: Any) -> str:
    """An ISO-8601 time as ``YYYY-MM-DD HH:MM:SS`` plus its offset; other text unchanged."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.tzinfo is not None:
        offset = moment.strftime("%z")
        text += " UTC" if offset in ("+0000", "-0000") else f" {offset[:3]}:{offset[3:]}"
    return text


def _short(value: Any, n: int = 8) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= n + 1 else text[:n] + "…"


def _query_string(params: dict[str, Any]) -> str:
    """A query string of the non-empty parameters (for links)."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("badges.web", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(from_us=_from_us, when=_when, short=_short, query_string=_query_string)
    return env


def render(name: str, context: dict[str, Any]) -> str:
    return environment().get_template(name).render(**context)


def render_page(
    request: web.Request, name: str, context: dict[str, Any], *, status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    site = request.app.get(SITE, {})
    # set by the sign-in middleware; none on the open pages (login, errors before sign-in)
    who = {"role": request.get(ROLE), "csrf": request.get(CSRF)}
    text = render(name, {"site": site, "path": request.path, **who, **context})
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers=headers)
