"""Prometheus metrics for Credly (and Accredible) calls, as a thin mixin over the transport.

Every HTTP attempt (retries included) counts once in ``badges_credly_calls_total{endpoint,
outcome}``; its latency, from the moment the per-organization rate limiter lets it go to the
answer, goes to ``badges_credly_call_seconds{endpoint}``. The client itself is unchanged: this
wraps its one transport method and its limiter.
"""

from __future__ import annotations

import re
import time
from contextvars import ContextVar
from typing import Any

from yarl import URL

from badges import metrics

from .client import CredlyClient, JsonApiClient
from .ratelimit import Limiter
from .errors import (
    CredlyAuthError,
    CredlyError,
    CredlyNotFound,
    CredlyRateLimited,
    CredlyServerError,
    CredlyUnavailable,
    CredlyValidationError,
)

_started: ContextVar[float | None] = ContextVar("credly_call_started", default=None)

# (method, path after organizations/{org}/) -> endpoint label; a fixed set keeps cardinality low
_ENDPOINTS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"^$"), "get_organization"),
    ("GET", re.compile(r"^badge_templates$"), "list_badge_templates"),
    ("POST", re.compile(r"^badges$"), "issue_badge"),
    ("GET", re.compile(r"^badges$"), "find_badges"),
    ("GET", re.compile(r"^badges/[^/]+$"), "get_badge"),
    ("PUT", re.compile(r"^badges/[^/]+/revoke$"), "revoke_badge"),
    ("GET", re.compile(r"^events/[^/]+$"), "get_event"),
)
_ORG_PATH = re.compile(r"/organizations/[^/]+/?(.*)$")
# Accredible's calls under the same labels (the metric counts the calls of every provider)
_ACCREDIBLE: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"/issuer/all_groups/?$"), "list_badge_templates"),
    ("POST", re.compile(r"/credentials/?$"), "issue_badge"),
    ("POST", re.compile(r"/credentials/search/?$"), "find_badges"),
    ("GET", re.compile(r"/credentials/\d+/?$"), "get_badge"),
    ("PUT", re.compile(r"/credentials/\d+/?$"), "revoke_badge"),
)


def endpoint_label(method: str, url: str) -> str:
    path = URL(url).path
    match = _ORG_PATH.search(path)
    tail = match.group(1).rstrip("/") if match else None
    if tail is not None:
        for m, pattern, label in _ENDPOINTS:
            if m == method.upper() and pattern.match(tail):
                return label
        return "other"
    for m, pattern, label in _ACCREDIBLE:
        if m == method.upper() and pattern.search(path):
            return label
    return "other"


def outcome_label(exc: CredlyError) -> str:
    if isinstance(exc, CredlyAuthError):
        return "auth_error" if exc.status else "no_token"
    for cls, label in (
        (CredlyNotFound, "not_found"),
        (CredlyValidationError, "validation_error"),
        (CredlyRateLimited, "rate_limited"),
        (CredlyServerError, "server_error"),
        (CredlyUnavailable, "unavailable"),
    ):
        if isinstance(exc, cls):
            return label
    return "error"


class RateWait:
    """How much the per-organization rate limiter holds calls back, for the metrics and the
    dashboard: an operator must be able to tell "the worker is slow" from "the configured
    Credly rate is the bottleneck" (badges queue behind the limiter while everything else is
    idle)."""

    # a wait shorter than this is the limiter's own bookkeeping, not a call held back
    HELD_S = 0.001

    def __init__(self) -> None:
        self.waiting = 0
        self.waited_s = 0.0
        self.held_calls = 0
        self.last_held = 0.0  # time.time() of the last call that had to wait
        self.answered_429 = 0  # Credly's own limit (429 Too Many Requests), retried after Retry-After

    def snapshot(self, rate_per_s: float, shared: bool) -> dict[str, Any]:
        recent = self.waiting > 0 or time.time() - self.last_held < 60
        return {"rate_per_s": rate_per_s, "shared": shared, "waiting_calls": self.waiting,
                "waited_s_total": round(self.waited_s, 3), "held_calls_total": self.held_calls,
                "answered_429_total": self.answered_429,
                "limiting": recent,
                "last_held_s_ago": round(time.time() - self.last_held, 1) if self.last_held else None}


RATE_WAIT = RateWait()


class _TimedLimiter:
    """The client's limiter; records when a call is let through (the latency starts there) and
    how long it waited for it (``RateWait``)."""

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter

    async def acquire(self, amount: float = 1) -> None:
        t0 = time.perf_counter()
        RATE_WAIT.waiting += 1
        metrics.CREDLY_RATE_WAITING.inc()
        try:
            await self._limiter.acquire(amount)
        finally:
            RATE_WAIT.waiting -= 1
            metrics.CREDLY_RATE_WAITING.dec()
        now = time.perf_counter()
        waited = now - t0
        if waited >= RateWait.HELD_S:
            RATE_WAIT.waited_s += waited
            RATE_WAIT.held_calls += 1
            RATE_WAIT.last_held = time.time()
            metrics.CREDLY_RATE_LIMITED.inc(waited)
        _started.set(now)


class Metered(JsonApiClient):
    """Meters the shared transport; mixed into each provider's client."""

    def _limiter(self, org: str) -> Any:
        return _TimedLimiter(super()._limiter(org))

    async def _once(
        self, org: str, method: str, url: str, params: dict[str, str] | None,
        body: dict[str, Any] | None,
    ) -> dict[str, Any]:
        endpoint = endpoint_label(method, url)
        _started.set(None)
        outcome = "ok"
        try:
            return await super()._once(org, method, url, params, body)
        except CredlyError as exc:
            outcome = outcome_label(exc)
            if isinstance(exc, CredlyRateLimited):
                RATE_WAIT.answered_429 += 1
            raise
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            metrics.CREDLY_CALLS.labels(endpoint, outcome).inc()
            started = _started.get()
            if started is not None:  # None: no request was sent (no token)
                metrics.CREDLY_LATENCY.labels(endpoint).observe(time.perf_counter() - started)


class MeteredCredlyClient(Metered, CredlyClient):
    pass
