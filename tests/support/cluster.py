"""Worker processes for integration tests: real `badges worker` processes on the real broker.

Each test module that needs its own isolation gets its own ``app_id`` (hence its own topics and
consumer groups) on the session's one broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from badges.embedded_broker import free_port

# BROKER.md: short group timeouts make a join take seconds instead of ~30 s on tansu.
FAST_BROKER_ENV = {
    "BADGES_BROKER_SESSION_TIMEOUT_S": "3",
    "BADGES_BROKER_HEARTBEAT_INTERVAL_S": "1",
    "BADGES_BROKER_REBALANCE_TIMEOUT_S": "3",
    "BADGES_FETCH_MAX_WAIT_MS": "10",
    "BADGES_RECOVERY_DELAY_S": "0.2",
}


# Every test worker accepts this read-only token: learner pages and APIs need one (SPEC §9).
VIEWER_TOKEN = "viewer-it-6c0e2a9f1b7d4e3a"
VIEWER_AUTH = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll a condition instead of sleeping blindly; returns the truthy value."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the condition may not be observable yet
            last_exc = exc
        time.sleep(interval)
    last = f" (last error: {last_exc!r})" if last_exc else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}{last}")


def worker_env(bootstrap: str, app_id: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """A worker's environment: the production defaults (rocksdb store included) except the
    short group timeouts the embedded broker needs (BROKER.md); a test that wants another
    store or setting says so in ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BADGES_")}
    env.update(FAST_BROKER_ENV)
    env.update(
        BADGES_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        BADGES_APP_ID=app_id,
        BADGES_DATA_DIR=str(data_dir),
        BADGES_PARTITIONS="4",
        BADGES_LOG_LEVEL="info",
        BADGES_VIEWER_TOKEN=VIEWER_TOKEN,
        # every test client is 127.0.0.1: tests that send wrong tokens must not lock out the
        # rest of their module (the throttle has tests of its own)
        BADGES_AUTH_MAX_FAILURES="10000",
    )
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    env: dict[str, str]
    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "WorkerProcess":
        self.port = self.port or free_port()
        env = dict(self.env, BADGES_WEB_PORT=str(self.port))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "badges.cli.main", "worker"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def health(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/healthz", timeout=2).json()

    def wait_ready(self, timeout: float = 60.0) -> "WorkerProcess":
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; see {self.log_path}")
            return bool(self.health().get("ready"))

        wait_until(ready, timeout=timeout, interval=0.2, what=f"worker on :{self.port} to be ready (log {self.log_path})")
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode
