"""Credly's rate limit belongs to the organization, not to one worker.

With ``BADGES_CREDLY_SHARED_RATE_LIMIT`` the workers of one app share a moving window per
organization in Redis (the ``limits`` library, on redis-py), so N workers together stay at the
configured rate. Redis only throttles: while it is unreachable each worker falls back to its own
in-process limiter (logged once per outage), so an outage never stops or loses an issue call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Protocol

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

MIN_WAIT_S = 0.005


class Limiter(Protocol):
    async def acquire(self, amount: float = 1) -> None: ...


def window_for(rate_per_s: float) -> tuple[int, int]:
    """(calls, seconds) of a window for a rate: 20/s → (20, 1); 0.5/s → (1, 2)."""
    if rate_per_s >= 1:
        return int(rate_per_s), 1
    return 1, max(1, math.ceil(1 / rate_per_s))


class SharedRateLimit:
    """One moving window per organization, in Redis, shared by every worker of the app."""

    def __init__(self, redis_url: str, rate_per_s: float, key_prefix: str, **redis_options: Any) -> None:
        calls, seconds = window_for(rate_per_s)
        self.item = RateLimitItemPerSecond(calls, seconds)
        self.window_s = float(seconds)
        uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
        self._storage = RedisStorage(uri, implementation="redispy", key_prefix=key_prefix,
                                     socket_connect_timeout=2, socket_timeout=2, **redis_options)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._degraded = False

    def for_org(self, org: str, fallback: Limiter) -> "OrgLimiter":
        return OrgLimiter(self, org, fallback)

    async def try_acquire(self, org: str) -> bool:
        """Take one call of ``org``'s window if there is room; raises RedisError/OSError."""
        return bool(await self._limiter.hit(self.item, org))

    async def wait_s(self, org: str) -> float:
        """How long until the window of ``org`` has room again."""
        stats = await self._limiter.get_window_stats(self.item, org)
        return min(max(stats.reset_time - time.time(), MIN_WAIT_S), self.window_s)

    def outage(self, exc: BaseException) -> None:
        if not self._degraded:
            self._degraded = True
            log.warning("shared Credly rate limit: Redis unreachable (%s); each worker limits itself "
                        "until it is back", type(exc).__name__)

    def recovered(self) -> None:
        if self._degraded:
            self._degraded = False
            log.info("shared Credly rate limit: Redis is back")


class OrgLimiter:
    """The limiter the Credly client awaits before each call of one organization."""

    def __init__(self, shared: SharedRateLimit, org: str, fallback: Limiter) -> None:
        self.shared, self.org, self.fallback = shared, org, fallback

    async def acquire(self, amount: float = 1) -> None:
        shared = self.shared
        while True:
            try:
                if await shared.try_acquire(self.org):
                    shared.recovered()
                    return
                wait = await shared.wait_s(self.org)
            except (RedisError, OSError) as exc:
                shared.outage(exc)
                await self.fallback.acquire(amount)
                return
            await asyncio.sleep(wait)


def shared_rate_limit(settings: Any) -> SharedRateLimit | None:
    """The shared limiter the settings ask for, if any."""
    if not settings.credly_shared_rate_limit:
        return None
    url, options = settings.redis_connection()
    return SharedRateLimit(url, settings.credly_rate_per_s, f"{settings.app_id}-credly-rate", **options)
