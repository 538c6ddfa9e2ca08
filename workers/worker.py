"""`badges worker`: one worker process (all agents, tables and the web server)."""

from __future__ import annotations

import gc

import faust

from badges import compat
from badges.config.settings import Settings
from badges.kafka.topics import ensure_topics
from badges.workers.app import build_app


# CPython's defaults are (700, 10, 10): a young-generation collection every 700 allocations.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Keep CPython's cycle collector off the hot path.

    Every event allocates short-lived containers (decoded Avro records, envelopes, progress
    dicts) while a batch of thousands is in flight, so with the default thresholds the
    collector runs every few events and keeps re-traversing the long-lived objects of Faust
    and aiokafka. Freezing what exists at start-up and collecting the young generation less
    often removes most of that cost (bench/RESULTS.md); cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_worker(settings: Settings) -> None:
    """Declare the topics, then hand the process to Faust's worker until SIGTERM/SIGINT."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # optional speed-up
        pass
    compat.check()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    ensure_topics(settings)
    app = build_app(settings)
    tune_gc()
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    # Faust's terminal spinner lowers the root logger to DEBUG (it spins on every record), so
    # every debug call of aiokafka and Faust would build a LogRecord on the hot path.
    worker.spinner = None
    worker.execute_from_commandline()
