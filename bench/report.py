"""bench/RESULTS.md and bench/latency.png from a run's results (``{out}/results.json``).

    python -m bench.report bench/out/results.json   # re-render without re-running
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _f(x: Any, fmt: str = ",.0f") -> str:
    try:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "n/a"
        return format(x, fmt)
    except (TypeError, ValueError):
        return str(x)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=90)
    rates = [r["offered"] for r in rows]
    for q, style in ((50, "o-"), (95, "s-"), (99, "^-")):
        ax.plot(rates, [r[f"p{q}_ms"] for r in rows], style, label=f"p{q}")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(rates)
    ax.set_xticklabels([f"{r:,.0f}" for r in rates])
    ax.xaxis.set_minor_formatter(NullFormatter())  # only the measured rates are labelled
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}" if str(int(y))[0] in "25" else ""))
    ax.set_xlabel("offered rate (events/s), one worker")
    ax.set_ylabel("ce_time → Credly issue call (ms)")
    ax.set_title("End-to-end latency by offered rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


HOPS_NOTE = (
    "Hops (ms, p50 / p99 of each stage's own distribution from `ce_time`, so a hop is the "
    "difference of two stages' medians): *ingest* = ce_time → the event decoded by ingestion "
    "(the producer's linger and the input fetch); *progress* → progress applied (the envelopes' "
    "hop through the broker and the rules); *decision* → the decision taken by the Credly sink (the "
    "decisions' hop); *intent* → the issue call about to be sent (the sink's batch wait and the "
    "intent made durable); *HTTP* → the emulator receives the call. Stage histograms are the "
    "worker's own (`badges_stage_latency_seconds`, `badges_event_latency_seconds`: buckets, "
    "interpolated); the end-to-end figures are exact (emulator receive time − ce_time).\n")


def latency_tables(lat: dict[str, Any], add: Any) -> None:
    add("| offered events/s | sent events/s | badges (samples) | p50 ms | p95 ms | p99 ms | max ms | "
        "hops p50: ingest / progress / decision / intent / HTTP ms | stages p99: ingested / progress / "
        "decision / call ms | worker CPU | broker CPU | other processes |")
    add("|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|")
    for x in lat["rows"]:
        st = x.get("stages_ms") or {}
        order = ("ingested", "progress", "decision_taken", "credly_call")
        p50 = [(st.get(k) or [math.nan])[0] for k in order] + [x["p50_ms"]]
        hops = [p50[0]] + [b - a for a, b in zip(p50, p50[1:])]
        p99 = [(st.get(k) or [math.nan, math.nan])[1] for k in order]
        add(f"| {x['offered']:,.0f} | {_f(x['sent'])} | {x['badges']} | {_f(x['p50_ms'])} | {_f(x['p95_ms'])} | "
            f"**{_f(x['p99_ms'])}** | {_f(x['max_ms'])} | {' / '.join(_f(h) for h in hops)} | "
            f"{' / '.join(_f(v) for v in p99)} | "
            f"{_f(x.get('worker_cpu'), '.0%')} | {_f(x.get('broker_cpu'), '.0%')} | {_f(x.get('other_cpu'), '.0%')} |")


def profile_tables(p: dict[str, Any], add: Any) -> None:
    groups = {
        "our per-event code (decode, envelopes, rules engine, agents, table writes)":
            ("ingest:", "envelopes", "rules engine", "ingest service", "progress agent", "table writes", "decisions"),
        "Credly sink and its HTTP client (per badge)": ("Credly sink", "aiohttp client"),
        "Kafka client (aiokafka: fetch, records, protocol, producer)": ("aiokafka",),
        "Faust, mode and the event loops (incl. socket I/O in uvloop)": ("Faust", "mode", "asyncio"),
        "metrics, web": ("metrics", "web"),
    }
    totals = {g: sum(share for name, share in p["categories"] if name.startswith(prefixes))
              for g, prefixes in groups.items()}
    add("| grouped | share |")
    add("|---|---:|")
    for g, share in totals.items():
        add(f"| {g} | {share:.0%} |")
    add("")
    add("| part | share of samples |")
    add("|---|---:|")
    for name, share in p["categories"]:
        add(f"| {name} | {share:.1%} |")
    add("\nTop functions by own time:\n")
    add("| function | share |")
    add("|---|---:|")
    for name, share in p["top_self"]:
        add(f"| `{name}` | {share:.1%} |")
    add("")


RESTARTS_START, RESTARTS_END = "<!-- restarts:start -->", "<!-- restarts:end -->"  # bench/restarts.py's section


def write(r: dict[str, Any], md: Path, png: Path) -> None:
    m = r["machine"]
    load = r["load"]
    lines: list[str] = []
    add = lines.append
    add("# Benchmark results\n")
    add("Produced by the benchmark harness (`bench/`, see `python -m bench --help`); "
        "every figure below comes from one run, on one machine, baselines included.\n")
    add(f"- Command: `{r['command']}` (`make bench`), {r['started']}, {r['seconds'] / 60:.1f} min")
    add(f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_mb'] / 1024:.0f} GB RAM, "
        f"Python {m['python']}, {m['platform']}")
    add("- Libraries: " + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()))
    add(f"- Broker: {m['broker']}; all processes on this machine (worker, broker, load generator, "
        "Credly emulator).")
    add(f"- Workers: the production defaults (`{r.get('options', {}).get('store', 'rocksdb')}` store, "
        "fetch wait, batch sizes, log level `info`), except two settings: the Credly rate limit is "
        "lifted (`BADGES_CREDLY_RATE_PER_S=100000`: the emulator is local, the production default "
        "would only measure itself) and the consumer-group timeouts are short (3 / 1 / 3 s: the "
        "embedded broker holds every group join for about half the session timeout, which only "
        "delays start-up; `make bench-restarts` measures the default timeouts).")
    la0, la1 = r.get("load_avg_start"), r.get("load_avg_end")
    add(f"- Load average (1/5/15 min) at start {' / '.join(f'{x:.2f}' for x in la0)}, at end "
        f"{' / '.join(f'{x:.2f}' for x in la1)} (the benchmark's own processes included). The CPU that "
        "other processes used during each measurement window is in the tables (\"other processes\", "
        "share of one core; the machine has "
        f"{m['nproc']}).")
    add(f"- Load: U = {load['learners']:,} learners, M = {load['templates']} templates "
        f"(single, AND-of-groups, OR-groups, penalty, N-of-M with a window, complete_within and "
        f"expiry, badge of badges), {load['messages']:,} messages "
        f"({load['applied']:,} of event types some rule uses, {load['badges']:,} badges to issue, "
        f"{load['revoked']:,} of them revoked later); "
        + ", ".join(f"{t.removeprefix('org.openedx.learning.')} {n:,}" for t, n in load["by_type"].items())
        + ". Messages are real edx-event-bus-kafka messages (openedx-events serializer, Confluent "
        "framing, 10 `ce_*`/CloudEvents headers).\n")

    one, raw, faust = r.get("one") or {}, r.get("raw") or {}, r.get("faust") or {}
    add("## Throughput (input events/s, sustained: 10 % → 90 % of a backlog of the whole load)\n")
    add("Input events/s counts every message of the topic a process gets through, as the baselines "
        "do; the worker decodes every one and applies those of event types some rule uses "
        f"({load['applied']:,} of {load['messages']:,}; applied/s in the notes).\n")
    add("| what | input events/s | CPU (of one core) | peak RSS | notes |")
    add("|---|---:|---:|---:|---|")
    if raw:
        add(f"| raw aiokafka consumer, no-op (client ceiling) | {_f(raw['rate'])} | | {_f(raw['peak_rss_mb'])} MB | "
            f"same topic, same consumer settings as ingestion, {raw['messages']:,} messages |")
    if faust:
        add(f"| plain Faust agent, `table[key] += 1` per message (framework ceiling) | {_f(faust['rate'])} | | "
            f"{_f(faust['peak_rss_mb'])} MB | same topic, memory store, same broker timeouts, "
            f"first {faust['messages']:,} messages |")
    for key in ("one", "two"):
        x = r.get(key)
        if x:
            add(f"| **worker**, {x['label']} | **{_f(x['rate'])}** | {_f(x.get('worker_cpu'), '.0%')} | "
                f"{_f(x['peak_rss_mb'])} MB | {_f(x['rate_applied'])} applied/s, "
                f"{_f(x.get('cpu_us_per_message'), '.1f')} CPU µs per input event, broker "
                f"{_f(x.get('broker_cpu'), '.0%')}, other processes {_f(x.get('other_cpu'), '.0%')}; "
                f"decode + match + progress + "
                f"decisions + Credly sink; checks {'passed' if x['ok'] else 'FAILED: ' + '; '.join(x['problems'])} |")
    prof = r.get("profile")
    if prof:
        add(f"| worker under py-spy (sampling at 50 Hz, non-blocking) | {_f(prof['rate'])} | "
            f"{_f(prof.get('worker_cpu'), '.0%')} | {_f(prof['peak_rss_mb'])} MB | the profiled run below; "
            "same topic, a deployment of its own; counts not re-checked |")
    add("")
    if one and raw and faust:
        add("**Ratios (same run):** "
            f"worker / raw consumer = **{one['rate'] / raw['rate']:.1%}** (target ≥ 10 %; "
            f"{one['rate_applied'] / raw['rate']:.1%} counting applied events only), "
            f"worker / plain Faust agent = **{one['rate'] / faust['rate']:.1f}×** (target ≥ 3×; "
            f"{one['rate_applied'] / faust['rate']:.1f}× counting applied events only)"
            + (f", two workers / one = {r['two']['rate'] / one['rate']:.2f}×" if r.get("two") else "") + ".\n")
    if r.get("two"):
        add(f"Two workers on {m['nproc']} CPUs share the cores with each other and the broker, "
            "so the second worker adds what the machine has left, not a second machine's worth.\n")

    if r.get("flat"):
        add("## Cost per event against the number of templates (one worker)\n")
        add("| active templates M | input events/s (checked run) | repeat runs | best | applied/s "
            "| worker CPU µs per input event | other processes' CPU | badges | checks |")
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        best = []
        for x in r["flat"]:
            reps = x.get("repeats") or []
            best.append(max([x["rate"], *reps]))
            add(f"| {x['templates']:,} | {_f(x['rate'])} | {', '.join(_f(v) for v in reps) or '–'} | {_f(best[-1])} | "
                f"{_f(x['rate_applied'])} | {_f(x.get('cpu_us_per_message'), '.1f')} | {_f(x.get('other_cpu'), '.0%')} | "
                f"{x['badges']:,} | {'passed' if x['ok'] else 'FAILED'} |")
        add(f"\nSlowest / fastest (best of the runs of each M): {min(best) / max(best):.2f} (1.0 = perfectly flat). "
            "Each M has its own load (same U and mix, courses of its own templates). Two runs of one "
            "configuration differ by up to ~20 % on this machine, hence the repeats.\n")

    lat = r.get("latency")
    if lat:
        add("## End-to-end latency (event `ce_time` → Credly emulator receives the issue call)\n")
        add(f"One worker, M = {load['templates']}, events produced at a fixed rate for "
            f"{lat['rate_seconds']:.0f} s per rate; a sample per badge issued.\n")
        latency_tables(lat, add)
        add(f"\n![latency percentiles against offered rate]({png.name})\n")
        add("Each rate runs on a fresh broker and worker (the first 10 % of the load skipped, so that "
            "learners' sessions are whole): tansu's fetch cost grows with the number of record "
            "batches in a partition, and a stream of single events makes many small batches (measured: "
            "one producer sending 1-message batches at ~350/s, tailed by one consumer, takes tansu from "
            "35 % to 90 % of a core within 10 s).\n")
        add(HOPS_NOTE)
        if not lat["check"]["ok"]:
            add(f"Checks FAILED: {lat['check']['problems']}\n")

    dense, dlat, dload = r.get("dense"), r.get("dense_latency"), r.get("dense_load")
    if dense or dlat:
        add("## The badge-dense load (issue 20)\n")
        if dload:
            add(f"`bench/dense.py`: U = {dload['learners']:,} learners, M = {dload['templates']} templates "
                "(one course / both of two courses / one of two courses, every fifth with a penalty that "
                f"resets it), {dload['messages']:,} course-passing events on 3 input partitions, "
                f"{dload['badges']:,} badges ({dload['revoked']:,} revoked later): one badge per "
                f"{dload['messages'] / max(dload['badges'], 1):.1f} events (the main load: one per "
                f"{load['messages'] / max(load['badges'], 1):.0f}).\n")
        if dense:
            add("| what | input events/s | CPU (of one core) | CPU µs per input event | backlog applied after | "
                "last badge in Credly after | other processes | checks |")
            add("|---|---:|---:|---:|---:|---:|---:|---|")
            for x in (dense, r.get("dense_profile")):
                if not x:
                    continue
                checks = ("not verified" if x.get("ok") is None else "passed" if x["ok"]
                          else "FAILED: " + "; ".join(x["problems"]))
                add(f"| {x['label']} | **{_f(x['rate'])}** | {_f(x.get('worker_cpu'), '.0%')} | "
                    f"{_f(x.get('cpu_us_per_message'), '.1f')} | {_f(x['seconds_to_apply'], '.1f')} s | "
                    f"{_f(x.get('seconds_to_credly'), '.1f')} s | {_f(x.get('other_cpu'), '.0%')} | {checks} |")
            add("\nSeconds from spawning the worker (start-up included). Same run as the figures above "
                "(baselines: the raw consumer and the plain Faust agent of the main load).\n")
        if dlat:
            add(f"Latency on the badge-dense load ({dlat['rate_seconds']:.0f} s per rate, a fresh broker "
                "and worker per rate):\n")
            latency_tables(dlat, add)
            add("")
            if not dlat["check"]["ok"]:
                add(f"Checks FAILED: {dlat['check']['problems']}\n")
        dp = (r.get("dense_profile") or {}).get("profile")
        if dp:
            add(f"Where the worker's time goes on this load (py-spy, {dp['samples']:,} samples):\n")
            profile_tables(dp, add)

    rec = r.get("recovery")
    if rec:
        fresh = r.get("fresh_start") or {}
        add("## Recovery after SIGKILL\n")
        add("| | seconds |")
        add("|---|---:|")
        add(f"| restart → ready (partitions assigned) | {_f(rec['restart_to_ready_s'], '.1f')} |")
        add(f"| restart → applying events again, {rec['progress_keys']:,} progress keys "
            f"({rec['changelog_records']:,} changelog records) recovered | **{_f(rec['restart_to_applied_s'], '.1f')}** |")
        if fresh:
            add(f"| for comparison, a fresh worker (empty tables): start → ready | {_f(fresh['start_to_ready_s'], '.1f')} |")
            add(f"| a fresh worker: start → applying events | {_f(fresh['start_to_applied_s'], '.1f')} |")
        add(f"\nProof that the state came back: {rec['proof']} ({'ok' if rec['ok'] else 'FAILED'}). "
            "The memory store recovers from the changelog alone (tansu never compacts, so every record is "
            "read back).\n")

    dec = r.get("decode")
    if dec:
        g = dec["geomean_us"]
        add("## Avro decode alone (µs per event, geometric mean over the load's event types)\n")
        add("| Apache `avro` | `fastavro` | `KafkaDecoder.decode` (headers + framing + fastavro + learner) |")
        add("|---:|---:|---:|")
        add(f"| {g['avro']:.1f} ({1e6 / g['avro']:,.0f}/s) | {g['fastavro']:.1f} ({1e6 / g['fastavro']:,.0f}/s) | "
            f"{g['decode']:.1f} ({1e6 / g['decode']:,.0f}/s) |\n")

    if prof and prof.get("profile"):
        p = prof["profile"]
        add("## Where the worker's time goes (py-spy, one worker on the backlog)\n")
        add(f"{p['samples']:,} samples over {_f(prof.get('profile_seconds'), '.0f')} s: the whole processing of "
            "the backlog (first applied event to the last), all threads of the worker; each sample is "
            "attributed to the innermost frame of a known part. Native code (fastavro, orjson, uvloop) "
            "counts towards the Python frame that called it.\n")
        profile_tables(p, add)
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        add(notes.read_text())
    # the restart figures come from their own run (python -m bench.restarts): kept as they are
    kept = ""
    if md.exists():
        old = md.read_text()
        if RESTARTS_START in old and RESTARTS_END in old:
            kept = "\n" + RESTARTS_START + old.split(RESTARTS_START, 1)[1].split(RESTARTS_END, 1)[0] + RESTARTS_END + "\n"
    md.write_text("\n".join(lines).rstrip() + "\n" + kept)
    if lat:
        plot(lat["rows"], png)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    src = Path(args[0]) if args else ROOT / "bench" / "out" / "results.json"
    results = json.loads(src.read_text())
    write(results, ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "latency.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
