"""Secured Kafka end to end (SPEC §9): the worker, the CLI and replay through TLS (socat in front
of tansu), through SASL (PLAIN and SCRAM, tests/support/sasl_proxy.py) and SASL_SSL, and what a
wrong password, an unknown CA or a plaintext client against a TLS port do to each command."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from badges.embedded_broker import EmbeddedBroker, free_port
from tests.support.cluster import worker_env
from tests.support.configs import config_yaml, demo_template
from tests.support.openedx import COURSE_PASSING, DEMO_COURSE
from tests.support.sasl_proxy import SaslProxy
from tests.support.stack import Stack, make_stack
from tests.support.tls import Pki, TlsTerminator, make_pki

DEMO_T = "7d4f6a52-0000-4000-8000-0000000000aa"
USER, PASSWORD = "ABCDEFGH12345678", "cc/Secret+with:all@the%25chars=="
BOUND_S = 30  # a failing command must end within this


@dataclass
class Cluster:
    """A tansu broker reachable only through a secured front (its address is advertised)."""

    address: str
    broker: EmbeddedBroker
    fronts: list[TlsTerminator | SaslProxy]

    def stop(self) -> None:
        for front in self.fronts:
            front.stop()
        self.broker.stop()


def _broker(tmp: Path, port: int) -> EmbeddedBroker:
    return EmbeddedBroker(advertised=f"127.0.0.1:{port}", log_path=tmp / "tansu.log").start()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    port = free_port()
    broker = _broker(tmp_path_factory.mktemp("tls-broker"), port)
    cluster = Cluster(f"127.0.0.1:{port}", broker, [TlsTerminator(pki, broker.bootstrap, port=port).start()])
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def sasl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    port = free_port()
    broker = _broker(tmp_path_factory.mktemp("sasl-broker"), port)
    proxy = SaslProxy(target=broker.bootstrap, users={USER: PASSWORD}, port=port).start()
    cluster = Cluster(proxy.address, broker, [proxy])
    yield cluster
    cluster.stop()


def tls_env(pki: Pki, **extra: str) -> dict[str, str]:
    return {"BADGES_KAFKA_SECURITY_PROTOCOL": "SSL", "BADGES_KAFKA_SSL_CA_FILE": str(pki.ca), **extra}


def sasl_env(mechanism: str, password: str = PASSWORD, protocol: str = "SASL_PLAINTEXT") -> dict[str, str]:
    return {"BADGES_KAFKA_SECURITY_PROTOCOL": protocol, "BADGES_KAFKA_SASL_MECHANISM": mechanism,
            "BADGES_KAFKA_SASL_USERNAME": USER, "BADGES_KAFKA_SASL_PASSWORD": password}


def badges(address: str, tmp: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a command against ``address`` with these settings; (process, seconds it took)."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "badges.cli.main", *args],
        env=worker_env(address, "it-secured", tmp, BADGES_KAFKA_CONNECT_TIMEOUT_S="5", **env),
        capture_output=True, text=True, timeout=120, cwd=tmp,
    )
    return proc, time.monotonic() - started


def run_end_to_end(stack: Stack, learner: int) -> None:
    """The CLI configures, a worker starts, one real event becomes one badge in Credly."""
    stack.configure(config_yaml(demo_template(DEMO_T, DEMO_COURSE)))
    stack.start_worker()
    email = f"learner{learner}@example.com"
    stack.send([stack.event(COURSE_PASSING, learner, {"is_passing": True, "course.course_key": DEMO_COURSE})])
    badges_ = stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))
    assert len([b for b in badges_ if b["recipient_email"] == email]) == 1


# --- TLS ------------------------------------------------------------------------------------------

def test_worker_cli_and_replay_through_tls(tls: Cluster, pki: Pki, tmp_path: Path) -> None:
    stack = make_stack(tls.address, tmp_path, [(DEMO_T, "Demo")], "tls", security=tls_env(pki))
    try:
        run_end_to_end(stack, 1401)
        out = stack.cli("replay", "--from-beginning", "--wait", "60").stdout
        # the input topic holds the event and the worker's own badge-awarded lifecycle event
        assert re.search(r"read 2 events, handed over 1 .* 1 badge lifecycle events", out), out
        assert "workers applied 1 events" in out
        assert len(stack.credly_badges()) == 1  # replay issues nothing twice
        assert "active: true" in stack.cli("config", "export").stdout
    finally:
        stack.stop()
        stack.emulator.stop_thread()


def test_mutual_tls(pki: Pki, tmp_path: Path) -> None:
    port = free_port()
    broker = _broker(tmp_path, port)
    cluster = Cluster(f"127.0.0.1:{port}", broker,
                      [TlsTerminator(pki, broker.bootstrap, port=port, require_client_cert=True).start()])
    try:
        with_cert = tls_env(pki, BADGES_KAFKA_SSL_CERT_FILE=str(pki.client_cert), BADGES_KAFKA_SSL_KEY_FILE=str(pki.client_key))
        proc, _ = badges(cluster.address, tmp_path, "config", "export", **with_cert)
        assert proc.returncode == 0, proc.stderr
        proc, took = badges(cluster.address, tmp_path, "config", "export", **tls_env(pki))
        assert proc.returncode != 0 and took < BOUND_S
        assert proc.stderr.strip().startswith(f"error: Kafka at {cluster.address}:"), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        cluster.stop()


# --- SASL -----------------------------------------------------------------------------------------

def test_worker_and_cli_through_sasl_scram(sasl: Cluster, tmp_path: Path) -> None:
    stack = make_stack(sasl.address, tmp_path, [(DEMO_T, "Demo")], "scram", security=sasl_env("SCRAM-SHA-256"))
    try:
        run_end_to_end(stack, 1402)
    finally:
        stack.stop()
        stack.emulator.stop_thread()
    proxy = sasl.fronts[0]
    assert isinstance(proxy, SaslProxy) and (USER, "SCRAM-SHA-256") in proxy.authenticated


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_cli_through_the_other_sasl_mechanisms(sasl: Cluster, tmp_path: Path, mechanism: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("organizations: []\ntemplates: []\n")
    proc, _ = badges(sasl.address, tmp_path, "config", "apply", str(config), **sasl_env(mechanism))
    assert proc.returncode == 0, proc.stderr
    proxy = sasl.fronts[0]
    assert isinstance(proxy, SaslProxy) and (USER, mechanism) in proxy.authenticated


def test_sasl_ssl(pki: Pki, tmp_path: Path) -> None:
    """SASL_SSL as on Confluent Cloud: TLS (socat) in front of the SASL proxy in front of tansu."""
    port = free_port()
    broker = _broker(tmp_path, port)
    proxy = SaslProxy(target=broker.bootstrap, users={USER: PASSWORD}).start()
    cluster = Cluster(f"127.0.0.1:{port}", broker, [proxy, TlsTerminator(pki, proxy.address, port=port).start()])
    try:
        env = {**sasl_env("SCRAM-SHA-512", protocol="SASL_SSL"), "BADGES_KAFKA_SSL_CA_FILE": str(pki.ca)}
        proc, _ = badges(cluster.address, tmp_path, "config", "export", **env)
        assert proc.returncode == 0, proc.stderr
        assert (USER, "SCRAM-SHA-512") in proxy.authenticated
    finally:
        cluster.stop()


# --- failures: one line, bounded time, no secret --------------------------------------------------

@pytest.mark.parametrize("command", [["config", "export"], ["replay", "--from-beginning"], ["worker"]])
@pytest.mark.parametrize("case", ["wrong password", "unknown CA", "plaintext against TLS"])
def test_a_broker_that_refuses_us_ends_the_command_with_one_line(
    tls: Cluster, sasl: Cluster, pki: Pki, tmp_path: Path, case: str, command: list[str]
) -> None:
    address, env, cause = {
        "wrong password": (sasl.address, sasl_env("PLAIN", password="wr/ong+pass"), "SASL authentication failed"),
        "unknown CA": (tls.address, {"BADGES_KAFKA_SECURITY_PROTOCOL": "SSL"}, "TLS certificate verify failed"),
        "plaintext against TLS": (tls.address, {}, "BADGES_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
    }[case]
    proc, took = badges(address, tmp_path, *command, **env)
    assert proc.returncode != 0
    assert took < BOUND_S, f"{command} took {took:.0f} s"
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"error: Kafka at {address}: "), proc.stderr
    assert cause in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    if command != ["worker"]:  # the worker logs its start first; a tool prints only the line
        assert len(lines) == 1, proc.stderr
    assert "wr/ong+pass" not in proc.stderr + proc.stdout
