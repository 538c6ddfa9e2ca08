"""Whether this worker is ready to process events, and if not, why (``/healthz``, ``/livez``).

Ready means: the whole configuration topic has been read, the Faust consumer has its partitions
and has recovered its tables, and every ingestion path has joined its consumer group. A
component that finds a problem only it can see (a rejected credential, an unreachable
dependency) reports it with ``Problems.set`` and clears it when it is gone; the reasons are
plain words for operators and never carry secrets.

Liveness is narrower: the process is alive while its services have not crashed. A worker that
waits for a broker or recovers a large table is alive and not ready, and must not be restarted
for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from badges.workers.app import Runtime


@dataclass
class Problems:
    """Reasons reported by components, by component name."""

    _by_component: dict[str, str] = field(default_factory=dict)

    def set(self, component: str, reason: str) -> None:
        self._by_component[component] = reason

    def clear(self, component: str) -> None:
        self._by_component.pop(component, None)

    def reasons(self) -> list[str]:
        return [f"{component}: {reason}" for component, reason in sorted(self._by_component.items())]


def not_ready_reasons(runtime: "Runtime") -> list[str]:
    """Every reason the worker cannot process events now; empty when it is ready."""
    app = runtime.app
    reasons: list[str] = []
    if not runtime.config.loaded:
        reasons.append(f"configuration not loaded (reading {runtime.settings.config_topic})")
    if not app.tables.recovery.completed.is_set() or app.rebalancing:
        reasons.append("partitions not assigned (joining the consumer group)")
    elif app.in_recovery:
        reasons.append("tables recovering")
    ingest = runtime.services.get("kafka_ingest")
    if ingest is not None and not ingest.joined:
        reasons.append("event-bus ingestion not assigned (waits for the configuration, then joins its group)")
    redis = runtime.services.get("redis_ingest")
    if redis is not None and not redis.ready:
        reasons.append(f"redis ingestion not ready ({redis.last_error or 'starting'})")
    reasons.extend(runtime.problems.reasons())
    return reasons


def crashed_services(runtime: "Runtime") -> list[str]:
    """Services of the worker that crashed: the process should be restarted."""
    out = []
    candidates: list[tuple[str, Any]] = [("app", runtime.app)]
    candidates += [(name, svc) for name, svc in runtime.services.items() if hasattr(svc, "crashed")]
    for name, service in candidates:
        if getattr(service, "crashed", False):
            reason = getattr(service, "crash_reason", None)
            out.append(f"{name}: {type(reason).__name__ if reason else 'crashed'}")
    return out
