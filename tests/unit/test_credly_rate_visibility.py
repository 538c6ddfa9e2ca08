"""When the configured Credly rate, not the worker, holds badges back, the metrics and the
dashboard's figures say so (issue 20). The client talks to the Credly emulator over real HTTP
on loopback."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from badges.credly.metered import RATE_WAIT, MeteredCredlyClient
from tests.support.credly import ORG, issue_request, running_emulator, tokens


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_calls_held_back_by_the_rate_limit_are_counted_and_reported() -> None:
    held_before, waited_before = RATE_WAIT.held_calls, _sample("badges_credly_rate_limited_seconds_total")
    async with running_emulator() as server:
        client = MeteredCredlyClient(server.api_url, tokens(), rate_per_s=20.0, timeout_s=5.0)
        try:
            waiting_seen: list[int] = []

            async def watch() -> None:
                while True:
                    waiting_seen.append(RATE_WAIT.waiting)
                    await asyncio.sleep(0.01)

            watcher = asyncio.create_task(watch())
            # 10 badges at 20 calls/s: the limiter spaces them 50 ms apart, so most wait
            await asyncio.gather(*(client.issue_badge(ORG, issue_request(email=f"l{i}@example.com"))
                                   for i in range(10)))
            watcher.cancel()
        finally:
            await client.close()
    assert RATE_WAIT.held_calls - held_before >= 8
    assert max(waiting_seen) >= 5  # calls were queued behind the limiter, not in flight
    waited = _sample("badges_credly_rate_limited_seconds_total") - waited_before
    assert waited >= 8 * 0.05 * 0.5  # about 0.05 + 0.10 + ... + 0.45 s in all; half of the least
    snap = RATE_WAIT.snapshot(20.0, shared=False)
    assert snap["limiting"] is True and snap["rate_per_s"] == 20.0 and snap["waiting_calls"] == 0
    assert _sample("badges_credly_rate_limit_waiting_calls") == 0


async def test_a_rate_that_never_holds_calls_back_is_not_reported_as_limiting() -> None:
    from badges.credly.metered import RateWait

    quiet = RateWait()
    assert quiet.snapshot(20.0, shared=True)["limiting"] is False
