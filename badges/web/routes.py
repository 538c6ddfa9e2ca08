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
            return self.json({
                "status": "ok",
                "app_id": runtime.settings.app_id,
                "ready": bool(ingest_assigned and assigned),
                "assigned_partitions": assigned,
                "ingest_partitions": ingest_assigned,
            })

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    _ = (Health, Metrics)  # registered by the decorators
