"""Browser hardening headers and the throttle on failed sign-ins.

Every answer carries the headers (error pages and 401s included): the pages use no inline script
or style, so the content security policy can be strict; nothing may frame them (clickjacking on
the sign-in form); no page address, which may hold a learner id, leaks in a Referer.

Failed attempts (a wrong bearer token, a wrong login) are counted per client address; past
``BADGES_AUTH_MAX_FAILURES`` within ``BADGES_AUTH_FAILURE_WINDOW_S`` the address gets 429 with
``Retry-After`` for any credentialed request, right or wrong, until the window has passed. The
count is per worker: guessing a token of any useful length stays out of reach all the same.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Awaitable, Callable

from aiohttp import web

from badges.web.http import HttpError

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; "
                                "form-action 'self'; base-uri 'none'; object-src 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# bounded memory under a flood of distinct addresses: the oldest address is forgotten first
MAX_TRACKED_CLIENTS = 10_000


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects raised by views
        _add_headers(exc)
        raise
    _add_headers(response)
    return response


def _add_headers(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def client_address(request: web.Request) -> str:
    """The peer address (a proxy in front should be trusted to throttle by itself)."""
    return request.remote or "unknown"


class FailureThrottle:
    """Failures per client within a sliding window."""

    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        times = self._failures.get(client)
        if times is None:
            return deque()
        horizon = self.clock() - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[client]
        return times

    def check(self, client: str) -> None:
        """429 while ``client`` has used up its failures."""
        times = self._recent(client)
        if len(times) >= self.max_failures:
            wait = max(1, math.ceil(times[0] + self.window_s - self.clock()))
            raise HttpError(429, f"too many failed sign-in attempts; retry in {wait} s", {"Retry-After": str(wait)})

    def failed(self, client: str) -> None:
        if client not in self._failures and len(self._failures) >= MAX_TRACKED_CLIENTS:
            del self._failures[next(iter(self._failures))]
        self._failures.setdefault(client, deque()).append(self.clock())
