"""Any worker answers for any learner; list pages see every worker's partitions.

Learner requests: Faust's router (``app.router.key_store``, the lookup behind
``app.table_route``) names the worker that owns the learner's partition of the ``progress``
table (key ``str(id).encode()``, murmur2 like ``badges.wire.envelope``). The request is
forwarded to that worker unless it is this one. ``table_route`` itself forwards without a
timeout or a loop guard, so this module does the forwarding: with a timeout, a hop header (a
forwarded request is always answered where it lands, so two workers that briefly disagree about
an assignment cannot bounce a request forever) and a 502 naming the worker when it is down.

A forwarded request carries the caller's credentials (bearer header or session cookie) and the
owner checks them again: being reachable from a peer grants nothing.

List pages (``/badges``): every worker answers ``/api/local/badges`` for the partitions it owns;
the worker asked fans out to all members of the group (their URLs come from Faust's assignor)
and merges the answers, saying which workers answered and which partitions are missing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from badges.web.http import SERVED_BY, HttpError

if TYPE_CHECKING:
    from badges.runtime import Runtime

log = logging.getLogger(__name__)

HOP = "X-Badges-Forwarded-By"
FORWARD_TIMEOUT_S = 10.0
FANOUT_TIMEOUT_S = 10.0


def _ident(url: URL | str) -> tuple[str, int]:
    u = URL(str(url))
    return (u.host or "", int(u.port or 80))


def self_url(runtime: "Runtime") -> str:
    return str(runtime.app.conf.canonical_url).rstrip("/")


def owner_of(runtime: "Runtime", table: str, key: bytes) -> str | None:
    """The URL of the worker owning ``key`` in ``table``; None when it is this worker."""
    try:
        url = runtime.app.router.key_store(table, key)
    except KeyError:
        raise HttpError(503, "the partition assignment is not known yet (rebalancing); retry shortly") from None
    if _ident(url) == _ident(runtime.app.conf.canonical_url):
        return None
    return str(url).rstrip("/")


CREDENTIAL_HEADERS = ("Authorization", "Cookie")


def credentials(request: web.Request) -> dict[str, str]:
    """The caller's credentials, to pass on to the worker that answers."""
    return {h: request.headers[h] for h in CREDENTIAL_HEADERS if h in request.headers}


def _session(runtime: "Runtime") -> aiohttp.ClientSession:
    return runtime.app.http_client  # Faust's aiohttp session, closed with the app


async def forward(runtime: "Runtime", owner: str, request: web.Request, what: str) -> web.Response:
    """The owner's answer to the same GET, passed through (status, body, content type)."""
    target = URL(owner).with_path(request.rel_url.path).with_query(request.rel_url.query)
    headers = {"Accept": request.headers.get("Accept", "*/*"), HOP: self_url(runtime), **credentials(request)}
    session = _session(runtime)
    try:
        async with session.get(target, headers=headers, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)) as resp:
            return web.Response(body=await resp.read(), status=resp.status, headers={
                "Content-Type": resp.headers.get("Content-Type", "application/octet-stream"),
                SERVED_BY: resp.headers.get(SERVED_BY, owner),
                "X-Badges-Routed-Via": self_url(runtime),
            })
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise HttpError(502, f"the worker that owns {what} ({owner}) did not answer ({type(exc).__name__})") from None


async def routed(
    runtime: "Runtime", request: web.Request, table: str, key: bytes, what: str,
    local: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Answer here when this worker owns ``key`` (or the request was already forwarded)."""
    if request.headers.get(HOP):
        return await local()
    owner = owner_of(runtime, table, key)
    if owner is None:
        return await local()
    return await forward(runtime, owner, request, what)


def members(runtime: "Runtime", table: str) -> dict[str, list[int]]:
    """Every worker of the group (URL) with its active partitions of ``table``'s changelog."""
    topic = runtime.app.tables[table].changelog_topic.get_topic_name()
    out: dict[str, list[int]] = {}
    try:
        distribution = runtime.app.router.tables_metadata()
    except Exception:  # noqa: BLE001 - no assignment yet
        distribution = {}
    for url, topics in distribution.items():
        out[str(url).rstrip("/")] = sorted(topics.get(topic, []))
    me = self_url(runtime)
    out.setdefault(me, sorted(local_partitions(runtime)))
    return out


def local_partitions(runtime: "Runtime") -> set[int]:
    """The partitions whose learners this worker processes (its decisions/progress partitions)."""
    topics = {runtime.settings.decisions_topic, runtime.settings.learner_events_topic}
    try:
        assignment = runtime.app.consumer.assignment()
    except Exception:  # noqa: BLE001 - consumer not started
        return set()
    return {tp.partition for tp in assignment if tp.topic in topics}


async def fan_out(
    runtime: "Runtime", request: web.Request, table: str, path: str, query: dict[str, str],
    local: Callable[[], Awaitable[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Each member's answer to ``path`` (this worker's computed directly), with who answered."""
    me = self_url(runtime)
    group = members(runtime, table)
    session = _session(runtime)

    async def ask(url: str, partitions: list[int]) -> dict[str, Any]:
        entry: dict[str, Any] = {"url": url, "partitions": partitions, "self": url == me, "ok": False, "error": None}
        try:
            if url == me:
                entry["data"] = await local()
            else:
                target = URL(url).with_path(path).with_query(query)
                headers = {HOP: me, "Accept": "application/json", **credentials(request)}
                async with session.get(target, headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=FANOUT_TIMEOUT_S)) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"answered {resp.status}")
                    entry["data"] = orjson.loads(await resp.read())
            entry["ok"] = True
        except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, orjson.JSONDecodeError, HttpError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("fan-out to %s%s failed: %s", url, path, entry["error"])
        return entry

    return list(await asyncio.gather(*(ask(url, parts) for url, parts in sorted(group.items()))))
