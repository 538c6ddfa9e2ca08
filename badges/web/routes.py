"""HTTP endpoints of a worker (Faust's web server): health and metrics for now."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from badges.workers.app import Runtime


def register(runtime: "Runtime") -> None:
    app = runtime.app

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            ingest = runtime.services.get("kafka_ingest")
            ingest_assigned = len(ingest.consumer.assignment()) if ingest and ingest.consumer else 0
            assigned = len(app.consumer.assignment())
            redis = runtime.services.get("redis_ingest")
            return self.json({
                "status": "ok",
                "app_id": runtime.settings.app_id,
                "ready": bool(ingest_assigned and assigned) and (redis is None or redis.ready),
                "assigned_partitions": assigned,
                "ingest_partitions": ingest_assigned,
                "redis_ingest": redis.status() if redis is not None else None,
            })

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    _ = (Health, Metrics)  # registered by the decorators
