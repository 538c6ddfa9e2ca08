"""`badges worker`: one worker process (all agents, tables and the web server)."""

from __future__ import annotations

import fcntl
import gc
import os
from pathlib import Path
from typing import Any

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


class DataDirInUse(RuntimeError):
    """Another worker process holds this worker's local state directory."""


_held: list[Any] = []  # the lock file of the state directory, open for the life of the process


def hold_data_dir(settings: Settings) -> Path:
    """Lock the worker's local state directory for this process, or refuse to start.

    Two workers on one directory (a volume shared by two pods, two local workers started with
    the same BADGES_DATA_DIR) cannot both open a partition's rocksdb store: the second waits on
    the first's lock, up to 30 s per partition it is assigned, then fails, and the group
    rebalances while it waits. The kernel drops the lock when the process ends, SIGKILL
    included, so a restarted worker takes its directory back at once.
    """
    state = settings.data_dir / settings.app_id
    state.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    lock = open(state / ".worker.lock", "a+")  # held open until the process exits
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise DataDirInUse(
            f"the state directory {state} is in use by another worker; give each worker its own "
            "BADGES_DATA_DIR (a volume of its own per pod)") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    _held.append(lock)
    return state


def run_worker(settings: Settings) -> None:
    """Declare the topics, then hand the process to Faust's worker until SIGTERM/SIGINT."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # optional speed-up
        pass
    compat.check()
    hold_data_dir(settings)
    ensure_topics(settings)
    app = build_app(settings)
    tune_gc()
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    # Faust's terminal spinner lowers the root logger to DEBUG (it spins on every record), so
    # every debug call of aiokafka and Faust would build a LogRecord on the hot path.
    worker.spinner = None
    worker.execute_from_commandline()
