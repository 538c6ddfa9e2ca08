"""Whether this worker is ready to process events, and if not, why (``/healthz``, ``/livez``).

Ready means: the whole configuration topic has been read, the Faust consumer has its partitions
and has recovered its tables, every ingestion path has joined its consumer group, and no
component reports a problem. Components that meet a condition only an operator can fix (the
schema registry refuses our credentials, the broker refuses our TLS or SASL settings) record it
in ``Health`` under a key of their own, instead of retrying forever or exiting, and clear it
when it is gone. A reason is one line of plain words that never holds a secret.

Liveness is narrower: the process is alive while its services have not crashed. A worker that
waits for a broker or recovers a large table is alive and not ready, and must not be restarted
for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from badges.runtime import Runtime

log = logging.getLogger(__name__)


class Health:
    """Problems reported by components, by key."""

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


def not_ready_reasons(runtime: "Runtime") -> list[str]:
    """Every reason the worker cannot process events now; empty when it is ready."""
    app = runtime.app
    reasons: list[str] = []
    if not runtime.config.loaded:
        reasons.append(f"configuration not loaded (reading {runtime.settings.config_topic})")
    if not app.tables.recovery.completed.is_set() or app.rebalancing:  # type: ignore[attr-defined]  # faust's TableManagerT interface omits recovery
        reasons.append("partitions not assigned (joining the consumer group)")
    elif app.in_recovery:
        reasons.append("tables recovering")
    ingest = runtime.kafka_ingest
    if ingest is not None and not ingest.joined:
        reasons.append("event-bus ingestion has not joined its consumer group yet")
    redis = runtime.redis_ingest
    if redis is not None and not redis.ready:
        reasons.append(f"redis ingestion not ready ({redis.last_error or 'starting'})")
    reasons.extend(reason for _key, reason in sorted(runtime.health.problems.items()))
    return reasons


def crashed_services(runtime: "Runtime") -> list[str]:
    """Services of the worker that crashed: the process should be restarted."""
    out = []
    candidates: list[tuple[str, Any]] = [("app", runtime.app), ("kafka_ingest", runtime.kafka_ingest),
                                         ("redis_ingest", runtime.redis_ingest),
                                         ("dead_letters", runtime.dead_letters)]
    for name, service in candidates:
        if getattr(service, "crashed", False):
            reason = getattr(service, "crash_reason", None)
            out.append(f"{name}: {type(reason).__name__ if reason else 'crashed'}")
    return out
