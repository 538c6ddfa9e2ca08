"""An isolated badges deployment for integration tests, on the session's one embedded broker.

A `Stack` has its own app id (so its own topics and consumer groups), its own Credly emulator,
and helpers to run CLI commands, start worker processes and produce real Open edX events.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from badges.accredible.emulator import AccredibleEmulatorServer
from badges.config.settings import Settings, load_settings
from badges.credly.emulator import EmulatorServer
from badges.kafka.topics import ensure_topics
from tests.support import openedx
from tests.support.cluster import WorkerProcess, wait_until, worker_env

ORG = "0b8a3f0e-0000-4000-8000-000000000001"
TOKEN = "tok-ACME-it-0123456789abcdef"
TOKEN_ENV = "CREDLY_TOKEN_ACME"
# an Accredible organization: the uuid is the operator's choice, the key names the issuer
ACC_ORG = "5e1d0c2a-0000-4000-8000-0000000000a1"
ACC_KEY = "acc-ACME-it-0123456789abcdef"
ACC_KEY_ENV = "ACCREDIBLE_KEY_ACME"
_clock = itertools.count()


def event_time() -> datetime:
    """Strictly increasing event times: the engine orders events by ce_time."""
    return datetime.now(timezone.utc) + timedelta(microseconds=next(_clock))


def seed(templates: Iterable[tuple[str, str]]) -> dict[str, Any]:
    return {
        "organizations": [{"uuid": ORG, "name": "ACME Learning", "token": TOKEN}],
        "templates": [
            {"uuid": uuid_, "org": ORG, "name": name, "description": f"{name} badge",
             "image_url": f"https://img.example/{uuid_}.png", "state": "active"}
            for uuid_, name in templates
        ],
    }


@dataclass
class Stack:
    bootstrap: str
    app_id: str
    workdir: Path
    emulator: EmulatorServer
    partitions: int = 4
    workers: list[WorkerProcess] = field(default_factory=list)
    # BADGES_KAFKA_* connection variables (TLS, SASL) for every command, worker and the test's
    # own clients; empty: plaintext
    security: dict[str, str] = field(default_factory=dict)
    # an Accredible emulator beside the Credly one (make_accredible_stack)
    accredible: AccredibleEmulatorServer | None = None

    @property
    def settings(self) -> Settings:
        extra = {"accredible_api_url": self.accredible.api_url} if self.accredible else {}
        return load_settings(
            kafka_bootstrap_servers=self.bootstrap, app_id=self.app_id, partitions=self.partitions,
            credly_api_url=self.emulator.api_url, data_dir=self.workdir, **extra,
            event_bus_topic_prefix=self.app_id,
            **{k.removeprefix("BADGES_").lower(): v for k, v in self.security.items()},
        )

    @property
    def input_topic(self) -> str:
        return self.settings.input_topic_names[0]

    def env(self, **extra: str) -> dict[str, str]:
        defaults = {
            # each stack has its own event-bus topics too: `{app_id}-learning-badges-lifecycle`
            "BADGES_EVENT_BUS_TOPIC_PREFIX": self.app_id,
            "BADGES_CREDLY_API_URL": self.emulator.api_url,
            "BADGES_PARTITIONS": str(self.partitions),
            "BADGES_CREDLY_TIMEOUT_S": "2",
            "BADGES_CREDLY_BACKOFF_MAX_S": "0.5",
            TOKEN_ENV: TOKEN,
            ACC_KEY_ENV: ACC_KEY,
            **({"BADGES_ACCREDIBLE_API_URL": self.accredible.api_url} if self.accredible else {}),
            **self.security,
        }
        return worker_env(self.bootstrap, self.app_id, self.workdir, **{**defaults, **extra})

    # --- CLI and workers ------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "badges.cli.main", *args],
            env=self.env(**extra), capture_output=True, text=True, timeout=120, cwd=self.workdir,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"badges {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start_worker(self, name: str | None = None, wait: bool = True, **extra: str) -> WorkerProcess:
        name = name or f"worker{len(self.workers) + 1}"
        # each worker its own local state (two rocksdb stores cannot share a directory); a
        # worker started again under the same name resumes from its own
        extra.setdefault("BADGES_DATA_DIR", str(self.workdir / "data" / name))
        worker = WorkerProcess(self.env(**extra), self.workdir / f"{name}.log").start()
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def stop(self) -> None:
        for w in self.workers:
            w.stop()

    def restart_worker(self) -> None:
        """SIGKILL the first worker and start it again on its own local state."""
        worker = self.workers[0]
        worker.kill9()
        worker.proc = None
        worker.start()
        worker.wait_ready(timeout=90)

    def plant_unfinished_intent(self, learner: int, template: str, organization: str, time: str) -> None:
        """The records a batch leaves when it dies after its intent and its decision is never
        delivered again: the progress table's badge record (awarded, version 1, completed by a
        ``demo`` requirement at ``time``) and an issuance record in flight with nothing applied.
        A running worker does not read its own changelog: restart it on the records."""
        import orjson

        from badges.wire.envelope import learner_partition

        time_us = int(datetime.fromisoformat(time).timestamp() * 1_000_000)
        event = {"event_id": f"0d9e3c1a-0000-4000-8000-{learner:012d}", "event_type": openedx.COURSE_PASSING,
                 "time": time, "time_us": time_us, "origin": "test"}
        identity = {"id": learner, "username": f"learner{learner}", "email": f"learner{learner}@example.com",
                    "name": "Ada Lovelace"}
        progress = {"v": 1, "learner": {**identity, "time_us": time_us}, "templates": {template: {
            "fulfilled": {"demo": {**event, "latest_us": time_us}}, "resets": {},
            "badge": {"status": "awarded", **event, "v": 1}}}}
        award = {"action": "award", "learner": identity, "template": template, "organization": organization,
                 "event": event, "replayed": False, "cause": ["demo"], "key_fields": {}, "version": 1}
        intent = {template: {"in_flight": True, "desired": "awarded", "pending": [award], "intent_at": 0}}
        producer = self.producer()
        partition = learner_partition(learner, self.settings.partitions)
        for table, record in (("progress", progress), ("issuance", intent)):
            producer.produce(f"{self.app_id}-{table}-changelog", key=str(learner).encode(),
                             value=orjson.dumps(record), partition=partition)
        assert producer.flush(30) == 0

    def configure(self, config_yaml: str) -> None:
        """Organization, template sync and configuration, through the CLI as an operator would."""
        path = self.workdir / f"config-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(config_yaml)
        self.cli("org", "add", "--uuid", ORG, "--api-key-env", TOKEN_ENV)
        self.cli("templates", "sync")
        self.cli("config", "apply", str(path))

    def configure_accredible(self, config_yaml: str) -> None:
        """The same for the Accredible organization: org add --provider accredible, sync, apply."""
        path = self.workdir / f"config-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(config_yaml)
        self.cli("org", "add", "--provider", "accredible", "--uuid", ACC_ORG, "--api-key-env", ACC_KEY_ENV,
                 "--name", "ACME on Accredible")
        self.cli("templates", "sync", "--org", ACC_ORG)
        self.cli("config", "apply", str(path))

    # --- events -------------------------------------------------------------------------------

    def producer(self) -> Producer:
        return Producer(self.settings.kafka.confluent_config(**{"acks": "all", "linger.ms": 2,
                                                                "partitioner": "murmur2_random"}))

    def send(self, messages: Iterable[Any], topic: str | None = None) -> int:
        producer = self.producer()
        n = 0
        for key, value, headers in messages:
            producer.produce(topic or self.input_topic, key=key, value=value, headers=headers)
            n += 1
            if n % 1000 == 0:
                producer.poll(0)
        assert producer.flush(30) == 0
        return n

    def event(self, event_type: str, user_id: int, fields: dict[str, Any] | None = None, **kw: Any) -> Any:
        kw.setdefault("time", event_time())
        kw.setdefault("email", f"learner{user_id}@example.com")
        kw.setdefault("name", "Ada Lovelace")
        kw.setdefault("username", f"learner{user_id}")
        return openedx.kafka_message(event_type, user_id=user_id, fields=fields or {}, **kw)

    def read(self, topic: str, min_count: int = 1, timeout: float = 30.0) -> list[Any]:
        """Messages of a topic from the beginning, waiting until at least ``min_count``."""
        consumer = Consumer(self.settings.kafka.confluent_config(**{
            "group.id": f"t-{uuid.uuid4()}", "auto.offset.reset": "earliest", "enable.auto.commit": False}))
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        out: list[Any] = []

        def enough() -> bool:
            for m in consumer.consume(500, timeout=0.2):
                if not m.error():
                    out.append(m)
            return len(out) >= min_count

        try:
            wait_until(enough, timeout=timeout, interval=0, what=f"{min_count} messages on {topic}")
            while batch := consumer.consume(500, timeout=0.5):  # and whatever else is there now
                out.extend(m for m in batch if not m.error())
        finally:
            consumer.close()
        return out

    # --- Credly emulator ------------------------------------------------------------------------

    def credly_badges(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.emulator.url}/_emulator/badges", timeout=5).json()

    def credly_requests(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.emulator.url}/_emulator/requests", timeout=5).json()

    def credly_fault(self, **fault: Any) -> None:
        httpx.post(f"{self.emulator.url}/_emulator/faults", json=fault, timeout=5).raise_for_status()

    def wait_badges(self, predicate: Any, timeout: float = 60.0, what: str = "Credly badges") -> list[dict[str, Any]]:
        def check() -> list[dict[str, Any]] | None:
            badges = self.credly_badges()
            return badges if predicate(badges) else None

        return wait_until(check, timeout=timeout, interval=0.2, what=what)


    # --- Accredible emulator ----------------------------------------------------------------------

    def _accredible(self, path: str) -> Any:
        assert self.accredible is not None, "a stack made by make_accredible_stack"
        return httpx.get(f"{self.accredible.url}/_emulator/{path}", timeout=5).json()

    def accredible_credentials(self) -> list[dict[str, Any]]:
        return self._accredible("credentials")

    def accredible_requests(self) -> list[dict[str, Any]]:
        return self._accredible("requests")

    def accredible_fault(self, **fault: Any) -> None:
        assert self.accredible is not None
        httpx.post(f"{self.accredible.url}/_emulator/faults", json=fault, timeout=5).raise_for_status()

    def wait_credentials(self, predicate: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
        def check() -> list[dict[str, Any]] | None:
            found = self.accredible_credentials()
            return found if predicate(found) else None

        return wait_until(check, timeout=timeout, interval=0.2, what="Accredible credentials")


def make_stack(bootstrap: str, workdir: Path, templates: Iterable[tuple[str, str]], name: str,
               security: dict[str, str] | None = None) -> Stack:
    emulator = EmulatorServer(seed(templates)).start_in_thread()
    stack = Stack(bootstrap=bootstrap, app_id=f"it-{name}-{uuid.uuid4().hex[:6]}", workdir=workdir, emulator=emulator,
                  security=dict(security or {}))
    ensure_topics(stack.settings)
    return stack


def make_accredible_stack(bootstrap: str, workdir: Path, groups: Iterable[tuple[int, str]], name: str) -> Stack:
    """A stack whose organization issues through Accredible (its groups seeded in the emulator);
    the Credly emulator stays, without templates. Returns the stack; group ``g``'s template is
    ``template_uuid(ACC_ORG, g)``."""
    stack = make_stack(bootstrap, workdir, [], name)
    stack.accredible = AccredibleEmulatorServer({
        "organizations": [{"uuid": ACC_ORG, "name": "ACME on Accredible", "token": ACC_KEY}],
        "groups": [{"id": g, "org": ACC_ORG, "name": n, "course_description": f"{n} certificate"} for g, n in groups],
    }).start_in_thread()
    return stack

