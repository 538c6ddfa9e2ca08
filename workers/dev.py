"""`badges dev`: the embedded default, everything on loopback, stopped together on Ctrl-C.

Starts the embedded broker (tansu, memory storage), the Credly sandbox emulator (or, with
``--provider accredible``, the Accredible one and its sample configuration) and one worker,
loads the sample configuration through the same code paths as the CLI (org add, templates sync,
config apply), then prints where to look and how to send a sample event.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from badges.accredible import emulator as accredible_emulator
from badges.config.entities import Organization
from badges.config.file import document_to_entities, validate_file
from badges.config.settings import Settings, load_settings
from badges.credly.emulator import DEMO_ORG, DEMO_TOKEN, EmulatorServer, demo_seed
from badges.tools.config_topic import publish, read_snapshot
from badges.embedded_broker import EmbeddedBroker, free_port
from badges.kafka.topics import ensure_topics
from badges.schemas.catalog import load_catalog

TOKEN_ENV = "CREDLY_TOKEN_ACME"  # the variable the sample configuration names
STATE_FILE = "dev.json"
DEV_ENV = {
    "BADGES_STORE": "memory",
    "BADGES_BROKER_SESSION_TIMEOUT_S": "3",
    "BADGES_BROKER_HEARTBEAT_INTERVAL_S": "1",
    "BADGES_BROKER_REBALANCE_TIMEOUT_S": "3",
    "BADGES_FETCH_MAX_WAIT_MS": "10",
    "BADGES_RECOVERY_DELAY_S": "0.2",
    "BADGES_PARTITIONS": "4",
}


ACCREDIBLE_KEY_ENV = "ACCREDIBLE_KEY_DEMO"  # the variable the Accredible sample names


@dataclass(frozen=True)
class DevProvider:
    """What `badges dev` starts for a provider: its emulator, demo organization and sample."""

    name: str
    server: type[EmulatorServer]
    seed: Any
    org: str
    token: str
    token_env: str
    sample: str
    url_setting: str


DEV_PROVIDERS = {
    "credly": DevProvider("Credly", EmulatorServer, demo_seed, DEMO_ORG, DEMO_TOKEN, TOKEN_ENV, "sample.yaml",
                          "credly_api_url"),
    "accredible": DevProvider("Accredible", accredible_emulator.AccredibleEmulatorServer, accredible_emulator.demo_seed,
                              accredible_emulator.DEMO_ORG, accredible_emulator.DEMO_TOKEN, ACCREDIBLE_KEY_ENV,
                              "sample-accredible.yaml", "accredible_api_url"),
}


def sample_config_text(provider: str = "credly") -> str:
    return (resources.files("badges.config") / DEV_PROVIDERS[provider].sample).read_text()


@dataclass
class DevStack:
    web_port: int
    data_dir: Path
    provider: str = "credly"
    log = print

    def __post_init__(self) -> None:
        self.broker: EmbeddedBroker | None = None
        self.emulator: EmulatorServer | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.admin_token = secrets.token_urlsafe(18)
        self.dev = DEV_PROVIDERS[self.provider]

    def settings(self) -> Settings:
        assert self.broker and self.emulator
        return load_settings(
            kafka_bootstrap_servers=self.broker.bootstrap,
            **{self.dev.url_setting: self.emulator.api_url},
            data_dir=self.data_dir,
            web_port=self.web_port,
            **{k.removeprefix("BADGES_").lower(): v for k, v in DEV_ENV.items()},
        )

    def worker_env(self, settings: Settings) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BADGES_")}
        env.update(DEV_ENV)
        env.update(
            BADGES_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
            BADGES_CREDLY_API_URL=settings.credly_base,
            BADGES_ACCREDIBLE_API_URL=settings.accredible_base,
            BADGES_DATA_DIR=str(self.data_dir),
            BADGES_WEB_PORT=str(self.web_port),
            BADGES_ADMIN_TOKEN=self.admin_token,
            **{self.dev.token_env: self.dev.token},
        )
        return env

    def start(self) -> Settings:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log("starting the embedded Kafka-protocol broker (tansu, memory storage) ...")
        self.broker = EmbeddedBroker(log_path=self.data_dir / "broker.log").start()
        self.emulator = self.dev.server(self.dev.seed()).start_in_thread()
        self.log(f"broker   {self.broker.bootstrap}")
        self.log(f"{self.dev.name:<8} {self.emulator.api_url}  (local sandbox emulator, organization {self.dev.org})")
        settings = self.settings()
        ensure_topics(settings)
        self.load_sample_configuration(settings)
        self.log("starting a worker ...")
        log_file = open(self.data_dir / "worker.log", "ab")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "badges.cli.main", "worker"],
            env=self.worker_env(settings), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.wait_ready(settings)
        (self.data_dir / STATE_FILE).write_text(json.dumps({
            "bootstrap": settings.kafka_bootstrap_servers,
            "web": settings.web_url,
            "credly": settings.credly_base,
            "accredible": settings.accredible_base,
            "app_id": settings.app_id,
            "input_topic": settings.input_topic_names[0],
        }))
        return settings

    def load_sample_configuration(self, settings: Settings) -> None:
        from badges.cli.credly_cmd import check_organization, pull_templates

        dev = self.dev
        os.environ.setdefault(dev.token_env, dev.token)
        org = asyncio.run(check_organization(settings, Organization(
            uuid=dev.org, api_key_env=dev.token_env, provider=self.provider,  # type: ignore[arg-type]  # pydantic validates it
            name="" if self.provider == "credly" else "Demo Accredible issuer")))
        publish(settings, [org])
        results = asyncio.run(pull_templates(settings, [dev.org]))
        publish(settings, [e for r in results for e in r.entities])
        result = validate_file(sample_config_text(self.provider), load_catalog())
        if result.errors or result.document is None:
            raise RuntimeError(f"the bundled sample configuration is invalid: {result.errors}")
        entities = document_to_entities(result.document, read_snapshot(settings, idle_s=0.5))
        publish(settings, entities)
        pulled = sum(r.pulled for r in results)
        self.log(f"config   organization {org.name!r}, {pulled} templates synced, sample configuration applied")

    def wait_ready(self, settings: Settings, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.worker is not None
            if self.worker.poll() is not None:
                raise RuntimeError(f"the worker exited ({self.worker.returncode}); see {self.data_dir / 'worker.log'}")
            try:
                if httpx.get(f"{settings.web_url}/healthz", timeout=1).json().get("ready"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the worker was not ready after {timeout:.0f}s; see {self.data_dir / 'worker.log'}")

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGTERM)
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait(5)
        if self.emulator is not None:
            self.emulator.stop_thread()
        if self.broker is not None:
            self.broker.stop()
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)


def _stop_on_sigterm(_signo: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C: no orphaned worker or broker


def run_dev(web_port: int, data_dir: Path, provider: str = "credly") -> int:
    stack = DevStack(web_port=web_port or free_port(), data_dir=data_dir, provider=provider)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        settings = stack.start()
        print()
        print(f"web view     {settings.web_url}/")
        print(f"admin token  {stack.admin_token}   (sign in with it, or Authorization: Bearer ...; this dev run only)")
        print("send a sample event:  badges dev send-sample --learner 42 --name 'Ada Lovelace'")
        print(f"logs         {data_dir}/worker.log, {data_dir}/broker.log")
        print("Ctrl-C stops the worker, the emulator and the broker.")
        assert stack.worker is not None
        while stack.worker.poll() is None:
            time.sleep(0.5)
        print(f"the worker exited with {stack.worker.returncode}; see {data_dir}/worker.log", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...")
        return 0
    except Exception as exc:  # noqa: BLE001 - a clear message, not a traceback, for a newcomer's first run
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


def dev_state(data_dir: Path) -> dict[str, Any]:
    path = data_dir / STATE_FILE
    if not path.exists():
        raise FileNotFoundError(f"no running `badges dev` found ({path} is missing); start `badges dev` first")
    return json.loads(path.read_text())
