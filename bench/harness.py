"""The benchmark's moving parts: a deployment (app id, topics, configuration, Credly emulator,
worker processes), producing a load, watching the workers' counters, checking the outcome.

Everything is real: the embedded broker, `badges worker` processes (tests/support/cluster.py),
the configuration topic, openedx-events messages. The Credly emulator runs in this process.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from badges.config.settings import Settings, load_settings
from badges.credly.emulator import EmulatorServer
from badges.tools.config_topic import publish
from badges.kafka.offsets import is_learner_key
from badges.kafka.topics import ensure_topics
from bench.load import RULE_TYPES, TOKEN, TOKEN_ENV, Load, config_entities, emulator_seed, template_uuid
from tests.support import openedx
from tests.support.cluster import WorkerProcess, wait_until, worker_env

_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+|NaN|[+-]Inf)$")


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    """A worker's /metrics, summed over label sets (``name`` -> value)."""
    text = httpx.get(f"{url}/metrics", timeout=timeout).text
    out: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m:
            out[m.group(1)] += float(m.group(3))
    return dict(out)


def histogram_quantiles(url: str, name: str, qs: Sequence[float], labels: str = "") -> list[float]:
    """Quantiles (seconds) of a worker's Prometheus histogram, interpolated within buckets;
    ``labels``: the series' other labels, as written after ``le`` (``stage="ingested"``)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    buckets = []
    suffix = re.escape("," + labels) if labels else ""
    for m in re.finditer(rf'^{name}_bucket{{le="([^"]+)"{suffix}}} ([0-9.eE+-]+)$', text, re.M):
        buckets.append((float(m.group(1)), float(m.group(2))))
    if not buckets or buckets[-1][1] == 0:
        return [float("nan")] * len(qs)
    total = buckets[-1][1]
    out = []
    for q in qs:
        rank = q * total
        lo_le, lo_n = 0.0, 0.0
        for le, n in buckets:
            if n >= rank:
                out.append(lo_le if le == float("inf") else lo_le + (le - lo_le) * (rank - lo_n) / max(n - lo_n, 1e-9))
                break
            lo_le, lo_n = le, n
    return out


def system_busy_seconds() -> float:
    """CPU time all processes of the machine have used so far (every core, /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@dataclass
class Deployment:
    """One isolated badges deployment on the bench broker: its own app id and input topic."""

    bootstrap: str
    name: str
    workdir: Path
    templates: int
    partitions: int
    input_prefix: str | None = None  # read another deployment's input topic
    store: str = "rocksdb"
    family: str = "main"  # the load's templates: bench/load.py ("main") or bench/dense.py ("dense")
    input_partitions: int | None = None  # the input topic's partitions (default: ``partitions``)
    extra_env: dict[str, str] = field(default_factory=dict)
    app_id: str = ""
    emulator: EmulatorServer | None = None
    workers: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app_id = self.app_id or f"bench-{self.name}-{uuid.uuid4().hex[:6]}"
        self.input_prefix = self.input_prefix or self.app_id
        # Faust's table directory does not name the app: a data directory per deployment.
        self.workdir = self.workdir / self.app_id
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def settings(self) -> Settings:
        return load_settings(
            kafka_bootstrap_servers=self.bootstrap, app_id=self.app_id, partitions=self.partitions,
            event_bus_topic_prefix=self.input_prefix, store=self.store, data_dir=self.workdir,
            credly_api_url=self.emulator.api_url if self.emulator else "http://127.0.0.1:1/v1/",
        )

    @property
    def input_topic(self) -> str:
        return self.settings.input_topic_names[0]

    def setup(self) -> "Deployment":
        from bench import dense

        family = dense if self.family == "dense" else None
        seed = (family.emulator_seed if family else emulator_seed)(self.templates)
        self.emulator = EmulatorServer(seed).start_in_thread()
        settings = self.settings
        if self.input_partitions:
            from confluent_kafka.admin import AdminClient, NewTopic

            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            for fut in admin.create_topics([NewTopic(self.input_topic, self.input_partitions, 1)]).values():
                fut.result(15)
        ensure_topics(settings)
        publish(settings, (family.config_entities if family else config_entities)(self.templates))
        return self

    def env(self) -> dict[str, str]:
        assert self.emulator is not None
        env = worker_env(
            self.bootstrap, self.app_id, self.workdir,
            BADGES_CREDLY_API_URL=self.emulator.api_url,
            BADGES_PARTITIONS=str(self.partitions),
            BADGES_EVENT_BUS_TOPIC_PREFIX=str(self.input_prefix),
            BADGES_STORE=self.store,
            # The production defaults (rocksdb, fetch wait, batch sizes, log level), except: the
            # emulator is local, so Credly's production rate limit would only measure itself;
            # and the short group timeouts of worker_env (the embedded broker holds every join
            # for about half the session timeout: start-up only, never the steady state).
            BADGES_CREDLY_RATE_PER_S="100000",
            **{TOKEN_ENV: TOKEN},
        )
        # the production fetch wait and recovery delay, not worker_env's test values
        for name in ("BADGES_FETCH_MAX_WAIT_MS", "BADGES_RECOVERY_DELAY_S"):
            env.pop(name, None)
        env.update(self.extra_env)
        return env

    def start_worker(self, wait: bool = True) -> WorkerProcess:
        name = f"worker{len(self.workers) + 1}"
        # Each worker its own local state, as each production worker has: two rocksdb stores
        # cannot share a directory (the second waits on the first's lock, up to 30 s, per
        # partition it is assigned, then fails). A worker started after one died takes the
        # lowest free directory: the restart after a SIGKILL finds its own state (``recovery``).
        taken = {w.env.get("BADGES_DATA_DIR") for w in self.live_workers()}
        data_dir = next(d for d in (str(self.workdir / "data" / f"slot{i}") for i in range(len(self.workers) + 1))
                        if d not in taken)
        worker = WorkerProcess({**self.env(), "BADGES_DATA_DIR": data_dir}, self.workdir / f"{name}.log").start()
        self.workers.append(worker)
        if wait:
            worker.wait_ready(timeout=120)
        return worker

    def live_workers(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.proc is not None and w.proc.poll() is None]

    def counters(self) -> dict[str, float]:
        total: dict[str, float] = defaultdict(float)
        for w in self.live_workers():
            for k, v in scrape(w.url).items():
                total[k] += v
        return dict(total)

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        if self.emulator is not None:
            self.emulator.stop_thread()


# --- producing ---------------------------------------------------------------------------------


def producer(bootstrap: str, linger_ms: int = 20) -> Producer:
    # librdkafka defaults otherwise, as edx-event-bus-kafka leaves them (its partitioner too).
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": linger_ms,
                     "queue.buffering.max.messages": 1_000_000, "batch.num.messages": 10_000})


def _headers(etype: str, when: datetime) -> list[tuple[str, bytes]]:
    return openedx.kafka_headers(openedx.metadata(etype, time=when))


def _send(p: Producer, topic: str, key: bytes | None, value: bytes, headers: Any) -> None:
    while True:
        try:
            p.produce(topic, value=value, key=key, headers=headers)
            return
        except BufferError:
            p.poll(0.05)


def produce_backlog(bootstrap: str, topic: str, load: Load, start: int = 0, stop: int | None = None) -> float:
    """Messages [start, stop) of the load, as fast as possible; ce_time strictly increasing.
    Returns the seconds it took."""
    t0 = time.monotonic()
    p = producer(bootstrap)
    base = datetime.now(timezone.utc)
    types = load.types
    for i, (t, _lid, key, value) in enumerate(load.messages[start:stop], start):
        _send(p, topic, key, value, _headers(types[t], base + timedelta(microseconds=i)))
        if i % 2000 == 0:
            p.poll(0)
    remaining = p.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} messages not delivered to {topic}")
    return time.monotonic() - t0


def produce_at_rate(bootstrap: str, topic: str, load: Load, indices: Sequence[int], rate: float,
                    ce_times: dict[int, float]) -> float:
    """The load's messages ``indices`` at ``rate``/s, each with ``ce_time`` = the moment it is
    handed to the producer (as edx-event-bus-kafka does), recorded (epoch seconds) in
    ``ce_times``. Returns the rate achieved."""
    p = producer(bootstrap, linger_ms=5)  # librdkafka's default, which edx-event-bus-kafka keeps
    types = load.types
    n = 0
    t0 = time.monotonic()
    last = datetime.now(timezone.utc)
    while n < len(indices):
        due = min(len(indices), int((time.monotonic() - t0) * rate) + 1)
        while n < due:
            i = indices[n]
            t, _lid, key, value = load.messages[i]
            now = datetime.now(timezone.utc)
            when = now if now > last else last + timedelta(microseconds=1)
            last = when
            _send(p, topic, key, value, _headers(types[t], when))
            ce_times[i] = when.timestamp()
            n += 1
        p.poll(0)
        time.sleep(0.002)
    elapsed = time.monotonic() - t0
    p.flush(60)
    return n / max(elapsed, 1e-9)


def send_messages(bootstrap: str, topic: str, messages: Iterable[Any]) -> None:
    p = producer(bootstrap, linger_ms=1)
    for key, value, headers in messages:
        _send(p, topic, key, value, headers)
    assert p.flush(30) == 0


# --- watching ----------------------------------------------------------------------------------


@dataclass
class Watch:
    """A time series of the workers' counters while they work."""

    series: list[tuple[float, float, float]] = field(default_factory=list)  # (time, applied, consumed)
    peak_rss_mb: float = 0.0

    def rate(self, total: float, lo: float = 0.1, hi: float = 0.9) -> float:
        return window_rate([(t, a) for t, a, _ in self.series], total, lo, hi)


def window_rate(series: list[tuple[float, float]], total: float, lo: float = 0.1, hi: float = 0.9) -> float:
    """Sustained rate: between the first samples at or above ``lo`` and ``hi`` of ``total``."""
    start = next(((t, c) for t, c in series if c >= lo * total), None)
    end = next(((t, c) for t, c in series if c >= hi * total), None)
    if start is None or end is None or end[0] <= start[0]:
        return float("nan")
    return (end[1] - start[1]) / (end[0] - start[0])


def watch(dep: Deployment, applied_target: int, timeout: float, interval: float = 0.25,
          on_sample: Callable[[float, float], None] | None = None) -> Watch:
    """Sample the workers' counters until ``applied_target`` events have been applied."""
    w = Watch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = dep.counters()
        except httpx.HTTPError:
            time.sleep(interval)
            continue
        now = time.time()
        applied = c.get("badges_events_applied_total", 0.0)
        w.series.append((now, applied, c.get("badges_events_consumed_total", 0.0)))
        for worker in dep.live_workers():
            assert worker.proc is not None
            w.peak_rss_mb = max(w.peak_rss_mb, peak_rss_mb(worker.proc.pid))
        if on_sample:
            on_sample(now, applied)
        if applied >= applied_target:
            return w
        time.sleep(interval)
    raise TimeoutError(f"{dep.name}: {w.series[-1][1] if w.series else 0:.0f} of {applied_target} events applied after {timeout:.0f}s")


# --- checking ----------------------------------------------------------------------------------


def email(learner: int) -> str:
    return f"learner{learner}@example.com"


@dataclass
class Expect:
    """What a deployment must end with: events applied and Credly badges in their states."""

    wanted: int  # events the progress agents apply
    badges: dict[tuple[str, str], str]  # (recipient email, template uuid) -> final Credly state

    def plus(self, badge: tuple[str, str]) -> "Expect":
        """One probe event besides the load, completing one badge."""
        return Expect(self.wanted + 1, {**self.badges, badge: "pending"})


def expect_all(load: Load) -> Expect:
    """The whole load, processed."""
    return Expect(load.wanted, {
        (email(lid), template_uuid(j)): "revoked" if status == "revoked" else "pending"
        for (lid, j), (status, idx, ridx) in load.expected.items()
    })


def expect_slice(load: Load, indices: Sequence[int]) -> Expect:
    """Only the messages ``indices`` (increasing), by a deployment that saw nothing else: they
    must hold every message of each learner they include, up to the last index."""
    last = indices[-1] if indices else -1
    learners = {load.messages[i][1] for i in indices}
    rule_idx = {i for i, t in enumerate(load.types) if t in RULE_TYPES}
    badges = {}
    for (lid, j), (status, idx, ridx) in load.expected.items():
        if lid in learners and idx <= last:
            badges[(email(lid), template_uuid(j))] = "revoked" if status == "revoked" and 0 <= ridx <= last else "pending"
    return Expect(sum(1 for i in indices if load.messages[i][0] in rule_idx), badges)


def whole_sessions(load: Load, start: int) -> list[int]:
    """Indices from ``start`` on, of the learners whose first message is at or after it."""
    first: dict[int, int] = {}
    for i, (_t, lid, _k, _v) in enumerate(load.messages):
        first.setdefault(lid, i)
    return [i for i in range(start, len(load.messages)) if first[load.messages[i][1]] >= start]


def credly_badges(dep: Deployment) -> dict[tuple[str, str], list[str]]:
    assert dep.emulator is not None
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for b in dep.emulator.state.list_badges():
        seen[(b.recipient_email, b.template_id)].append(b.state)
    return seen


def wait_credly(dep: Deployment, expect: Expect, timeout: float) -> float:
    """Wait until Credly holds every expected badge in its expected state; returns when."""
    want_revoked = sum(1 for s in expect.badges.values() if s == "revoked")

    def settled() -> bool:
        seen = credly_badges(dep)
        revoked = sum(1 for states in seen.values() for s in states if s == "revoked")
        return len(seen) >= len(expect.badges) and revoked >= want_revoked

    wait_until(settled, timeout=timeout, interval=0.25, what=f"{len(expect.badges)} Credly badges ({dep.name})")
    return time.time()


def check(dep: Deployment, expect: Expect, applied: float, exact_applied: bool = True) -> dict[str, Any]:
    """Counts that must hold: every event applied (exactly once, unless a rebalance may have
    re-delivered some), one badge per completed (learner, template) in its expected state, one
    successful issue call each, nothing dead-lettered."""
    expected = expect.badges
    seen = credly_badges(dep)
    assert dep.emulator is not None
    calls = dep.emulator.state.recorded()
    issue_ok = Counter((r.body or {}).get("recipient_email", "") + "|" + (r.body or {}).get("badge_template_id", "")
                       for r in calls if r.method == "POST" and r.path.endswith("/badges") and r.status == 201)
    wanted = expect.wanted
    problems: list[str] = []
    if (applied != wanted) if exact_applied else (applied < wanted):
        problems.append(f"{applied:.0f} events applied, {wanted} expected")
    missing = [k for k in expected if k not in seen]
    extra = [k for k in seen if k not in expected]
    doubled = [k for k, states in seen.items() if len(states) != 1]
    wrong = [k for k, s in expected.items() if k in seen and seen[k][-1] != s]
    several_calls = [k for k, n in issue_ok.items() if n != 1]
    for label, items in (("missing badges", missing), ("unexpected badges", extra),
                         ("several badges", doubled), ("wrong state", wrong),
                         ("several successful issue calls", several_calls)):
        if items:
            problems.append(f"{len(items)} {label}, e.g. {items[:3]}")
    dead = count_messages(dep.bootstrap, dep.settings.dead_letter_topic)
    if dead:
        problems.append(f"{dead} dead letters")
    return {
        "applied": applied, "wanted": wanted, "badges_expected": len(expected),
        "badges": sum(len(v) for v in seen.values()),
        "revoked": sum(1 for v in seen.values() for s in v if s == "revoked"),
        "issue_calls": sum(issue_ok.values()), "dead_letters": dead, "problems": problems,
        "ok": not problems,
    }


def count_messages(bootstrap: str, topic: str, keys: bool = False, idle_s: float = 1.0) -> Any:
    """Messages in a topic (read to the end, which tansu only reports by idleness)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-count-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 50})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or not meta.partitions:
            return (0, 0) if keys else 0
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        n = 0
        distinct: set[bytes] = set()
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            batch = consumer.consume(10_000, timeout=0.2)
            for m in batch:
                if m.error():
                    continue
                n += 1
                if keys and is_learner_key(m.key()):  # not a partition's applied offset
                    distinct.add(m.key())
            if batch:
                last = time.monotonic()
        return (n, len(distinct)) if keys else n
    finally:
        consumer.close()


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Free the broker's memory (tansu keeps every topic in RAM); errors are ignored."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if names:
            for fut in admin.delete_topics(names, operation_timeout=10).values():
                try:
                    fut.result(15)
                except Exception:  # noqa: BLE001 - best effort: the topics go with the broker anyway
                    pass
    except Exception:  # noqa: BLE001 - ditto
        pass


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()
