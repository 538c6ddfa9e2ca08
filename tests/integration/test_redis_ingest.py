"""edx-event-bus-redis ingestion: real Redis, real broker, real worker processes, Credly emulator.

Entries are written exactly as edx-event-bus-redis writes them (``openedx.redis_fields``: the
openedx-events serializer, its metadata fields, XADD). Every test has its own stream.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import uuid
from datetime import datetime
from typing import Any, Iterator

import httpx
import pytest
import redis

from badges.embedded_broker import free_port, wait_for_port
from tests.support import openedx
from tests.support.cluster import VIEWER_AUTH, wait_until
from tests.support.configs import config_yaml, demo_template
from tests.support.openedx import COURSE_PASSING, DEMO_COURSE
from tests.support.stack import Stack, event_time, make_stack

TEMPLATE = "7d4f6a52-0000-4000-8000-0000000000c1"
PREFIX = f"rit{uuid.uuid4().hex[:6]}"  # the Open edX EVENT_BUS_TOPIC_PREFIX of these workers
REDIS_URL = "redis://127.0.0.1:6379/0"

CONFIG = config_yaml(demo_template(TEMPLATE, DEMO_COURSE, with_penalty=False))


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("redis"), [(TEMPLATE, "Demo")], "redis")
    s.configure(CONFIG)
    yield s
    s.stop()
    s.emulator.stop_thread()


@pytest.fixture
def rds() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


class Bus:
    """One test's stream, as the event bus names it, and its consumer group."""

    def __init__(self, stack: Stack, rds: redis.Redis, url: str = REDIS_URL) -> None:
        self.stack = stack
        self.rds = rds
        self.url = url
        self.topic = f"badges-it-{uuid.uuid4().hex[:8]}"
        self.stream = f"{PREFIX}-{self.topic}"
        self.group = f"{stack.app_id}-ingest"

    def start_worker(self, **extra: str) -> Any:
        return self.stack.start_worker(
            BADGES_EVENT_BUS_TOPIC_PREFIX=PREFIX, BADGES_REDIS_URL=self.url, BADGES_REDIS_STREAMS=self.topic,
            BADGES_REDIS_BLOCK_MS="200", BADGES_CREDLY_RATE_PER_S="1000", **extra,  # type: ignore[arg-type]  # the variables never name name or wait
        )

    def passing(self, user_id: int) -> dict[Any, Any]:  # redis's xadd takes a dict of its key union
        return openedx.redis_fields(
            COURSE_PASSING, user_id=user_id, email=email(user_id), name="Ada Lovelace", time=event_time(),
            fields={"is_passing": True, "course.course_key": DEMO_COURSE},
        )

    def add(self, fields: dict[Any, Any]) -> str:
        return self.rds.xadd(self.stream, fields).decode()  # type: ignore[union-attr]  # a client without decode_responses: bytes

    def pending(self) -> int:
        return int(self.rds.xpending(self.stream, self.group)["pending"])

    def wait_all_acked(self, count: int) -> None:
        """Every entry delivered to the group and acknowledged."""
        def done() -> bool:
            info = next(g for g in self.rds.xinfo_groups(self.stream) if g["name"].decode() == self.group)
            return info["entries-read"] == count and info["lag"] == 0 and self.pending() == 0

        wait_until(done, timeout=30, what=f"all {count} entries of {self.stream} acknowledged")


@pytest.fixture
def bus(stack: Stack, rds: redis.Redis) -> Iterator[Bus]:
    b = Bus(stack, rds)
    yield b
    for w in stack.workers:
        w.stop()
    rds.delete(b.stream)


def email(user_id: int) -> str:
    return f"redis{user_id}@example.com"


def badges_of(stack: Stack, user_ids: range | list[int]) -> dict[str, int]:
    wanted = {email(u) for u in user_ids}
    counts: dict[str, int] = {}
    for b in stack.credly_badges():
        if b["recipient_email"] in wanted:
            counts[b["recipient_email"]] = counts.get(b["recipient_email"], 0) + 1
    return counts


def wait_badges(stack: Stack, user_ids: range | list[int], timeout: float = 60.0) -> dict[str, int]:
    def all_there() -> dict[str, int] | None:
        counts = badges_of(stack, user_ids)
        return counts if len(counts) == len(user_ids) else None

    return wait_until(all_there, timeout=timeout, interval=0.2, what=f"badges for {len(user_ids)} learners")


@pytest.fixture
def acl_user(rds: redis.Redis) -> Iterator[tuple[str, str]]:
    """A Redis ACL user of its own (not ``default``), with a password a URL must percent-encode."""
    user, password = f"badges-it-{uuid.uuid4().hex[:6]}", "p/w+:@%-" + uuid.uuid4().hex[:8]
    rds.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"], commands=["+@all"])
    yield user, password
    rds.acl_deluser(user)


def test_rediss_with_an_acl_user(stack: Stack, rds: redis.Redis, acl_user: tuple[str, str], tmp_path: Any) -> None:
    """BADGES_REDIS_URL=rediss://user:password@... verified with BADGES_REDIS_SSL_CA_FILE (SPEC §9)."""
    from urllib.parse import quote

    from tests.support.tls import TlsTerminator, make_pki

    pki = make_pki(tmp_path / "pki")
    tls = TlsTerminator(pki, "127.0.0.1:6379").start()
    user, password = acl_user
    bus = Bus(stack, rds, url=f"rediss://{quote(user, safe='')}:{quote(password, safe='')}@{tls.address}/0")
    try:
        worker = bus.start_worker(BADGES_REDIS_SSL_CA_FILE=str(pki.ca))
        assert worker.health()["redis_ingest"]["ready"]
        bus.add(bus.passing(451))
        assert wait_badges(stack, [451]) == {email(451): 1}
        assert password not in worker.log_path.read_text()
        clients = rds.client_list()
        assert any(c.get("user") == user for c in clients)  # it is the ACL user that reads
    finally:
        for w in stack.workers:
            w.stop()
        tls.stop()
        rds.delete(bus.stream)


def test_entries_in_the_redis_layout_complete_a_template_once(bus: Bus) -> None:
    # written before the worker exists: a new group starts at the stream's retained history
    history = bus.passing(401)
    bus.add(history)
    worker = bus.start_worker()
    health = worker.health()["redis_ingest"]
    assert health["ready"] and health["streams"] == [bus.stream] and health["group"] == bus.group
    assert health["consumer"] == f"{socket.gethostname()}:{worker.port}"
    bus.add(bus.passing(402))

    assert wait_badges(bus.stack, [401, 402]) == {email(401): 1, email(402): 1}
    badge = next(b for b in bus.stack.credly_badges() if b["recipient_email"] == email(401))
    assert badge["badge_template"]["id"] == TEMPLATE
    assert (badge["issued_to_first_name"], badge["issued_to_last_name"]) == ("Ada", "Lovelace")
    sent_time = datetime.fromisoformat(history[b"time"].decode())
    assert badge["issued_at"] == sent_time.strftime("%Y-%m-%d %H:%M:%S %z")  # the entry's `time`
    bus.wait_all_acked(2)

    # the dashboard shows where the group stands on the stream
    last_id = bus.rds.xinfo_stream(bus.stream)["last-generated-id"].decode()
    [row] = httpx.get(f"{worker.url}/api/dashboard", headers=VIEWER_AUTH, timeout=10).json()["consumers"]["redis"]
    assert row == {"stream": bus.stream, "group": bus.group, "last_delivered": last_id,
                   "pending": 0, "lag": 0, "consumers": 1}
    page = httpx.get(f"{worker.url}/", headers=VIEWER_AUTH, timeout=10).text
    assert "Redis Streams" in page and bus.stream in page and last_id in page


def test_bad_entries_are_dead_lettered_with_their_reason_and_acked(bus: Bus) -> None:
    good = bus.passing(411)
    truncated = {**bus.passing(412), b"event_data": good[b"event_data"][:10]}
    unknown = {**bus.passing(413), b"type": b"org.openedx.learning.no.such.event.v1"}
    untyped = {k: v for k, v in bus.passing(414).items() if k != b"type"}
    bad = {bus.add(truncated): (truncated, "avro_decode_error"),
           bus.add(unknown): (unknown, "unknown_event_type"),
           bus.add(untyped): (untyped, "missing_ce_type")}
    bus.start_worker()
    bus.add(good)  # after the bad ones: still processed

    assert wait_badges(bus.stack, [411]) == {email(411): 1}
    assert badges_of(bus.stack, [412, 413, 414]) == {}
    dlq = bus.stack.read(bus.stack.settings.dead_letter_topic, min_count=3)
    mine = [m for m in dlq if dict(m.headers() or [])["dlq_source_topic"] == bus.stream.encode()]
    assert len(mine) == 3
    for m in mine:
        headers = m.headers()
        h = dict(headers)
        fields, reason = bad[h["dlq_source_offset"].decode()]
        assert h["dlq_reason"].decode() == reason and h["dlq_detail"]
        assert h["dlq_source_partition"] == b"0"
        assert m.key() is None and m.value() == fields[b"event_data"]  # the original bytes
        # the entry's other fields, unchanged and in order, before the dlq_* headers
        assert headers[:len(fields) - 1] == [(k.decode(), v) for k, v in fields.items() if k != b"event_data"]
    bus.wait_all_acked(4)


def test_pending_entries_of_a_crashed_consumer_are_taken_over(bus: Bus) -> None:
    users = range(421, 426)
    bus.rds.xgroup_create(bus.stream, bus.group, id="0", mkstream=True)
    for u in users:
        bus.add(bus.passing(u))
    # another worker read them and died before acknowledging: only a claim can recover them now
    taken = bus.rds.xreadgroup(bus.group, "crashed-host:6066", {bus.stream: ">"}, count=100)
    assert len(taken[0][1]) == len(users) and bus.pending() == len(users)  # type: ignore[index]  # RESP2: a list of streams
    bus.start_worker(BADGES_REDIS_CLAIM_IDLE_MS="1000")
    bus.add(bus.passing(426))  # new entries flow meanwhile

    assert wait_badges(bus.stack, [*users, 426]) == {email(u): 1 for u in [*users, 426]}
    bus.wait_all_acked(len(users) + 1)


def test_own_pending_entries_are_read_again_at_once_after_a_restart(bus: Bus) -> None:
    users = range(431, 434)
    bus.rds.xgroup_create(bus.stream, bus.group, id="0", mkstream=True)
    for u in users:
        bus.add(bus.passing(u))
    # this worker's previous process read them and died; a claim would only come after an hour
    bus.rds.xreadgroup(bus.group, "it-worker-a", {bus.stream: ">"}, count=100)
    assert bus.pending() == len(users)
    bus.start_worker(BADGES_REDIS_CONSUMER_NAME="it-worker-a", BADGES_REDIS_CLAIM_IDLE_MS="3600000")

    assert wait_badges(bus.stack, users) == {email(u): 1 for u in users}
    bus.wait_all_acked(len(users))


def test_sigkill_mid_stream_loses_nothing_and_issues_nothing_twice(bus: Bus, broker) -> None:
    users = range(1000, 1300)
    worker = bus.start_worker(BADGES_REDIS_CLAIM_IDLE_MS="2000", BADGES_REDIS_BATCH_SIZE="20")
    first_third = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:  # an LMS emitting events all along, through the crash and the restart
        try:
            client = redis.Redis.from_url(REDIS_URL)
            for i, u in enumerate(users):
                client.xadd(bus.stream, bus.passing(u))
                if i == len(users) // 3:
                    first_third.set()
                stopped.wait(0.01)
            client.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
            first_third.set()

    stopped = threading.Event()
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert first_third.wait(30)
    wait_until(lambda: len(badges_of(bus.stack, users)) >= 10, timeout=60, what="the first badges")
    # Freeze the broker: what the worker reads now cannot reach Kafka, so it must stay pending;
    # kill the worker while it holds such entries.
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: bus.pending() > 0, timeout=10, interval=0.01, what="entries read while Kafka hangs")
        worker.kill9()
        held = bus.pending()
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    assert held > 0
    print(f"killed holding {held} unacknowledged entries, {len(badges_of(bus.stack, users))} badges issued")
    worker.start().wait_ready()  # same host and web port: the same consumer name
    writer.join(60)
    assert not writer.is_alive() and not errors

    assert wait_badges(bus.stack, users, timeout=120) == {email(u): 1 for u in users}
    bus.wait_all_acked(len(users))
    wanted = {email(u) for u in users}
    issued = [r for r in bus.stack.credly_requests() if r["method"] == "POST" and r["path"].endswith("/badges")
              and r.get("status") == 201 and (r.get("body") or {}).get("recipient_email") in wanted]
    assert len(issued) == len(users)  # one successful issue call per learner


class RedisServer:
    """A private real Redis (the shared one must stay up), with an fsync-always AOF like production."""

    def __init__(self, workdir: Any) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port)
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.kill9()


def test_a_redis_outage_is_waited_out_and_nothing_is_lost(stack: Stack, private_redis: RedisServer) -> None:
    client = redis.Redis.from_url(private_redis.url)
    bus = Bus(stack, client, private_redis.url)
    try:
        worker = bus.start_worker()
        bus.add(bus.passing(441))
        assert wait_badges(stack, [441]) == {email(441): 1}

        private_redis.kill9()
        down = wait_until(lambda: (h := worker.health()["redis_ingest"]) and not h["ready"] and h,
                          timeout=30, what="the worker to notice the outage")
        assert down["last_error"] and worker.proc is not None and worker.proc.poll() is None

        def retries() -> int:
            return worker.log_path.read_text(errors="replace").count("retrying in")

        wait_until(lambda: retries() >= 4, timeout=30, what="the worker to back off and retry")
        assert worker.proc.poll() is None and not worker.health()["redis_ingest"]["ready"]

        private_redis.start()  # same port, its AOF: stream, group and pending entries are back
        bus.add(bus.passing(442))
        assert wait_badges(stack, [441, 442]) == {email(441): 1, email(442): 1}
        wait_until(lambda: worker.health()["redis_ingest"]["ready"], timeout=30, what="ready again")
        bus.wait_all_acked(2)
        assert worker.proc.poll() is None  # the same process all along: no crash, no restart
    finally:
        for w in stack.workers:
            w.stop()
        client.close()
