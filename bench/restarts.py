"""Restart time with the production store: how long a restarted worker takes to process again.

    python -m bench.restarts                       # 30k and 1M progress keys, short and default timeouts
    python -m bench.restarts --keys 30000 --timeouts short

For each group-timeout setting (``short``: 3 / 1 / 3 s as in the tests and ``badges dev``;
``default``: the production defaults 60 / 3 / 60 s) and each number of progress keys, one
deployment with the rocksdb store:

1. a seed worker records one real half-done learner (course 1 of a course-1-AND-course-2
   template); its progress record is cloned for every other learner straight into the progress
   changelog (producing a million events through the worker would take minutes and measure
   ingestion, not restarts);
2. ``fresh``: a worker with an empty data dir recovers every key from the changelog;
3. ``graceful``: SIGTERM, start again on the same data dir;
4. ``sigkill``: SIGKILL, start again on the same data dir.

Each start is timed from spawning the process to ``/healthz`` ready and to its first event
applied: a half-done learner's completing event, sent right after the spawn, must reach Credly
as one badge, which proves that the progress came back. Peak RSS of each process is reported.

The results go to ``bench/out/restarts.json`` and replace the "Restarts" section of
``bench/RESULTS.md`` (the rest of that file is the main benchmark's).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from confluent_kafka import Producer

from badges.embedded_broker import EmbeddedBroker
from badges.wire.envelope import learner_key, learner_partition
from bench.harness import peak_rss_mb
from bench.report import RESTARTS_END as SECTION_END, RESTARTS_START as SECTION_START
from bench.run import ready_and_applied_times
from tests.support.cluster import wait_until
from tests.support.configs import config_yaml, passing, requirement, template
from tests.support.openedx import COURSE_PASSING
from tests.support.stack import Stack, make_stack

T_AND = "7d4f6a52-0000-4000-8000-0000000000e1"
C1, C2 = "course-v1:Bench+R1+2026", "course-v1:Bench+R2+2026"
CONFIG = config_yaml(template(T_AND, [requirement("c1", passing(C1), group="A"),
                                      requirement("c2", passing(C2), group="B")]))
TIMEOUTS = {
    "short": {"BADGES_BROKER_SESSION_TIMEOUT_S": "3", "BADGES_BROKER_HEARTBEAT_INTERVAL_S": "1",
              "BADGES_BROKER_REBALANCE_TIMEOUT_S": "3"},
    # the production defaults, the fetch wait and recovery delay included
    "default": {"BADGES_BROKER_SESSION_TIMEOUT_S": "60", "BADGES_BROKER_HEARTBEAT_INTERVAL_S": "3",
                "BADGES_BROKER_REBALANCE_TIMEOUT_S": "60", "BADGES_FETCH_MAX_WAIT_MS": "50",
                "BADGES_RECOVERY_DELAY_S": "3"},
}
# the production defaults with static group membership, as the Kubernetes StatefulSet runs them
TIMEOUTS["default-static"] = dict(TIMEOUTS["default"], BADGES_GROUP_INSTANCE_ID="bench-worker-0")


def log(msg: str) -> None:
    print(f"[restarts {datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def completing_event(stack: Stack, learner: int) -> Any:
    return stack.event(COURSE_PASSING, learner, {"is_passing": True, "course.course_key": C2},
                       email=f"b{learner}@example.com", time=datetime.now(timezone.utc))


def seed_progress(stack: Stack, env: dict[str, str], keys: int) -> None:
    """One real half-done learner through a worker, then its record cloned for learners 2..keys."""
    worker = stack.start_worker("seed", wait=False, **env).wait_ready(timeout=600)
    stack.send([stack.event(COURSE_PASSING, 1, {"is_passing": True, "course.course_key": C1},
                            email="b1@example.com")])
    changelog = f"{stack.app_id}-progress-changelog"
    [record] = [m for m in stack.read(changelog) if m.key() == learner_key(1)][-1:]
    worker.stop()
    stack.workers.remove(worker)
    template = record.value().decode()
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 20, "acks": "all",
                         "batch.num.messages": 10000, "queue.buffering.max.messages": 1_000_000})
    t0 = time.time()
    for lid in range(2, keys + 1):
        value = template.replace('"id":1,', f'"id":{lid},').replace("b1@example.com", f"b{lid}@example.com")
        value = value.replace('"username":"learner1"', f'"username":"learner{lid}"')
        while True:
            try:
                producer.produce(changelog, key=learner_key(lid), value=value.encode(),
                                 partition=learner_partition(lid, stack.partitions))
                break
            except BufferError:
                producer.poll(0.05)
        if lid % 50_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
    log(f"seeded {keys} progress keys in {time.time() - t0:.1f}s")


def timed_start(stack: Stack, name: str, env: dict[str, str], learner: int) -> dict[str, Any]:
    t0 = time.time()
    worker = stack.start_worker(name, wait=False, **env)
    stack.send([completing_event(stack, learner)])
    t_ready, t_applied = ready_and_applied_times(worker, 600)
    email = f"b{learner}@example.com"
    wait_until(lambda: [b for b in stack.credly_badges() if b["recipient_email"] == email], timeout=120,
               what=f"the badge of half-done learner {learner}")
    t_badge = time.time()
    assert worker.proc is not None
    return {
        "to_ready_s": (t_ready or math.nan) - t0,
        "to_first_event_s": (t_applied or math.nan) - t0,
        "to_badge_s": t_badge - t0,
        "badges": len([b for b in stack.credly_badges() if b["recipient_email"] == email]),
        "peak_rss_mb": peak_rss_mb(worker.proc.pid),
        "_worker": worker,
    }


def measure(broker: EmbeddedBroker, workdir: Path, keys: int, timeouts: str) -> list[dict[str, Any]]:
    (workdir / f"{timeouts}-{keys}").mkdir(parents=True, exist_ok=True)
    stack = make_stack(broker.bootstrap, workdir / f"{timeouts}-{keys}", [(T_AND, "Both")], f"rs-{timeouts}-{keys}")
    env = dict(TIMEOUTS[timeouts], BADGES_STORE="rocksdb")
    rows = []
    try:
        stack.configure(CONFIG)
        seed_progress(stack, env, keys)
        worker = None
        for i, kind in enumerate(("fresh", "graceful", "sigkill")):
            if worker is not None:
                if kind == "graceful":
                    worker.stop(timeout=120)
                else:
                    worker.kill9()
                stack.workers.remove(worker)
            learner = 1 + (i + 1) * (keys // 4)  # a different half-done learner each time
            row = timed_start(stack, "measured", env, learner)
            worker = row.pop("_worker")
            row.update(keys=keys, timeouts=timeouts, restart=kind)
            rows.append(row)
            log(f"{timeouts} timeouts, {keys} keys, {kind}: ready {row['to_ready_s']:.1f}s, "
                f"first event {row['to_first_event_s']:.1f}s, badge {row['to_badge_s']:.1f}s, "
                f"peak RSS {row['peak_rss_mb']:.0f} MB")
    finally:
        stack.stop()
        stack.emulator.stop_thread()
    return rows


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = [
        SECTION_START,
        "## Restarts (rocksdb store)",
        "",
        f"`{command}` ({datetime.now(timezone.utc).date().isoformat()}, this machine, the embedded broker). "
        "From spawning the process to `/healthz` ready, to the first event applied and to the Credly call "
        "of a half-done learner's completing event (sent right after the spawn: one badge each time "
        "proves the progress came back). `fresh`: an empty data dir, every key recovered from the "
        "changelog; `graceful`: SIGTERM then start on the same data dir; `sigkill`: SIGKILL then start.",
        "",
        "| timeouts | progress keys | restart | ready | first event | badge | peak RSS | badges |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ready = "–" if math.isnan(r["to_ready_s"]) else f"{r['to_ready_s']:.1f} s"  # applied before a poll saw ready
        lines.append(f"| {r['timeouts']} | {r['keys']:,} | {r['restart']} | {ready} | "
                     f"{r['to_first_event_s']:.1f} s | {r['to_badge_s']:.1f} s | {r['peak_rss_mb']:.0f} MB | "
                     f"{r['badges']} |")
    lines += [
        "",
        "`short`: session / heartbeat / rebalance timeouts 3 / 1 / 3 s; `default`: 60 / 3 / 60 s; "
        "`default-static`: the same with static group membership (`BADGES_GROUP_INSTANCE_ID`). The "
        "embedded broker holds a group join for about half the session timeout and keeps a SIGKILLed "
        "member until its session expires (BROKER.md), which is most of the `default` figures; Apache "
        "Kafka answers the join of an emptied group after `group.initial.rebalance.delay.ms` (3 s).",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def write_section(results_md: Path, section: str) -> None:
    text = results_md.read_text() if results_md.exists() else ""
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        tail = rest.split(SECTION_END, 1)[1].lstrip("\n")
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results_md.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.restarts", description=__doc__.splitlines()[0])
    p.add_argument("--keys", default="30000,1000000", help="progress keys, comma-separated")
    p.add_argument("--timeouts", default="short,default,default-static", help=", ".join(TIMEOUTS))
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "restarts")
    p.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"), help="'-': none")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.restarts" + ("" if not argv and len(sys.argv) < 2 else " " + " ".join(argv or sys.argv[1:]))
    rows: list[dict[str, Any]] = []
    for timeouts in a.timeouts.split(","):
        for keys in (int(k) for k in a.keys.split(",")):
            broker = EmbeddedBroker(log_path=a.out / f"tansu-{timeouts}-{keys}.log").start()
            try:
                rows += measure(broker, a.out, keys, timeouts)
            finally:
                broker.stop()
    (a.out / "restarts.json").write_text(json.dumps(rows, indent=1))
    if a.results != "-":
        write_section(Path(a.results), markdown(rows, command))
        log(f"wrote {a.results}")
    return 0 if all(r["badges"] == 1 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
