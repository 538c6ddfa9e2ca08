"""Why this worker is not ready, kept in one place for the readiness check (SPEC §9).

Components that meet a condition only an operator can fix (the schema registry refuses our
credentials, the broker refuses our TLS or SASL settings) record it here under a key of their
own, instead of retrying forever or exiting; the readiness endpoint reports the worker not ready
with these reasons. A reason is one line that never holds a secret.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class Health:
    def __init__(self) -> None:
        self._problems: dict[str, str] = {}

    def set_problem(self, key: str, reason: str) -> bool:
        """Record (or update) a problem; logs it once per key. True if the key is new."""
        new = key not in self._problems
        if new or self._problems[key] != reason:
            log.error("not ready: %s", reason)
        self._problems[key] = reason
        return new

    def clear(self, key: str) -> None:
        if self._problems.pop(key, None) is not None:
            log.info("%s: resolved", key)

    @property
    def problems(self) -> dict[str, str]:
        """Key -> reason of every current problem (a copy)."""
        return dict(self._problems)

    @property
    def ok(self) -> bool:
        return not self._problems
