"""`badges worker`: one worker process (all agents, tables and the web server)."""

from __future__ import annotations

import faust

from badges.config.settings import Settings
from badges.kafka.topics import ensure_topics
from badges.workers.app import build_app


def run_worker(settings: Settings) -> None:
    """Declare the topics, then hand the process to Faust's worker until SIGTERM/SIGINT."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # optional speed-up
        pass
    ensure_topics(settings)
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
