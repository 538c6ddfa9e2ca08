"""Retry policy shared by the client (idempotent calls) and the issuer (the POST loop).

Exponential backoff with jitter, except that a ``Retry-After`` from Credly wins: retrying
earlier would only earn another 429. A hint longer than ``max_retry_after_s`` stops the loop
instead of parking a worker for minutes.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base
from tenacity.wait import wait_exponential, wait_random

from .errors import CredlyRateLimited, CredlyServerError, CredlyUnavailable


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or garbled."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_after_of(exc: BaseException | None) -> float | None:
    return getattr(exc, "retry_after", None)


def is_transient(exc: BaseException) -> bool:
    """Errors worth another attempt; auth, 404 and 422 are not."""
    return isinstance(exc, CredlyServerError | CredlyUnavailable | CredlyRateLimited)


class wait_credly(wait_base):  # lower case: tenacity's naming style
    def __init__(self, initial_s: float, max_s: float) -> None:
        self._max = max_s
        self._backoff = (
            wait_exponential(multiplier=initial_s, max=max_s) + wait_random(0, initial_s)
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hint = retry_after_of(exc)
        if hint is not None:
            # A little jitter *after* the hint so that many workers do not return in lockstep.
            return hint + random.uniform(0.0, min(1.0, 0.1 * hint) + 0.01)
        return min(self._max, float(self._backoff(retry_state)))


class stop_on_long_retry_after(stop_base):
    def __init__(self, max_retry_after_s: float) -> None:
        self.max_retry_after_s = max_retry_after_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hint = retry_after_of(exc)
        return hint is not None and hint > self.max_retry_after_s


def credly_stop(max_attempts: int, max_retry_after_s: float) -> stop_base:
    return stop_after_attempt(max_attempts) | stop_on_long_retry_after(max_retry_after_s)
