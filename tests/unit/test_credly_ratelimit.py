"""The shared Credly rate limit, on the real Redis at 127.0.0.1:6379 (tests/unit needs no broker)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from badges.config.settings import load_settings
from badges.credly.ratelimit import SharedRateLimit, shared_rate_limit, window_for

REDIS_URL = "redis://127.0.0.1:6379/0"


class CountingLimiter:
    """The per-worker fallback: counts the calls it lets through."""

    def __init__(self) -> None:
        self.calls = 0

    async def acquire(self, amount: float = 1) -> None:
        self.calls += 1


def limit(rate_per_s: float, url: str = REDIS_URL) -> SharedRateLimit:
    return SharedRateLimit(url, rate_per_s, key_prefix=f"test-{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize(("rate", "window"), [(20, (20, 1)), (2.7, (2, 1)), (0.5, (1, 2)), (0.3, (1, 4))])
def test_window_for_a_rate(rate: float, window: tuple[int, int]) -> None:
    assert window_for(rate) == window


async def test_workers_share_one_window_per_organization() -> None:
    # a window of one call per 1000 s: whatever the timing, two workers get one call between them
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    first = SharedRateLimit(REDIS_URL, 0.001, key_prefix=prefix)
    second = SharedRateLimit(REDIS_URL, 0.001, key_prefix=prefix)
    assert await first.try_acquire("org-a")
    assert not await second.try_acquire("org-a")
    assert not await first.try_acquire("org-a")
    assert await second.try_acquire("org-b")  # another organization has its own window
    assert 0 < await second.wait_s("org-a") <= first.window_s


async def test_acquire_waits_for_room_without_the_fallback() -> None:
    shared = limit(20)  # 20 calls per second: the last 5 of 25 wait for the window to move
    fallback = CountingLimiter()
    org = shared.for_org("org-a", fallback)
    await asyncio.gather(*(org.acquire() for _ in range(25)))
    assert fallback.calls == 0


async def test_redis_unreachable_falls_back_to_the_local_limiter(caplog: Any) -> None:
    shared = limit(5, url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    fallback = CountingLimiter()
    org = shared.for_org("org-a", fallback)
    await org.acquire()
    await org.acquire()
    assert fallback.calls == 2
    assert caplog.text.count("Redis unreachable") == 1  # once per outage, not per call


def test_off_unless_asked_for() -> None:
    assert shared_rate_limit(load_settings()) is None
    on = shared_rate_limit(load_settings(credly_shared_rate_limit=True, app_id="one", credly_rate_per_s=7))
    assert on is not None and on.item.amount == 7
