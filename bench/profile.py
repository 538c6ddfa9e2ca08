"""Sampling profile of a running worker with py-spy, summarised by where the time goes.

Each sample is attributed to the *innermost* frame that belongs to a known part (the rules
engine, Avro decoding, the Kafka client, Faust, ...), so "Faust" means time spent in Faust's own
code, not in the agent it calls.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# (category, substrings of a frame "function (file:line)"), the first match from the innermost
# frame outwards wins.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("Avro decode (fastavro)", ("fastavro/",)),
    ("ingest: decode (badges/wire/decode.py)", ("badges/wire/decode.py", "badges/wire/timeparse.py")),
    ("envelopes (badges/wire/envelope.py)", ("badges/wire/envelope.py",)),
    ("decisions (badges/wire/decisions.py)", ("badges/wire/decisions.py",)),
    ("rules engine (badges/domain)", ("badges/domain/",)),
    ("table writes (tables/writer.py)", ("tables/writer.py",)),
    ("ingest service (agents/kafka_ingest.py)", ("agents/kafka_ingest.py",)),
    ("progress agent (agents/progress.py)", ("agents/progress.py",)),
    ("Credly sink (agents/sink.py, badges/credly)",
     ("agents/sink.py", "agents/lifecycle_emitter.py", "badges/credly/", "badges/wire/encode.py")),
    ("web / metrics endpoint", ("badges/web/", "aiohttp/web")),
    ("aiohttp client", ("aiohttp/",)),
    ("aiokafka producer", ("aiokafka/producer/",)),
    ("aiokafka consumer (fetch, records)", ("aiokafka/consumer/", "aiokafka/record/")),
    ("aiokafka protocol / connection", ("aiokafka/",)),
    ("Faust", ("faust/",)),
    ("mode (Faust's service library)", ("mode/",)),
    ("asyncio event loop", ("asyncio/", "uvloop/", "<frozen", "selectors.py", "threading.py")),
)


def available() -> bool:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) is not None or shutil.which("py-spy") is not None


def record(pid: int, out: Path, rate: int = 50) -> subprocess.Popen[bytes]:
    """Start py-spy on ``pid`` (collapsed stacks to ``out``) until ``stop``."""
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy") or "py-spy"
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--nonblocking",
         "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def stop(spy: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop py-spy; it writes its output on SIGINT."""
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(5)


def _frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    return stack.split(";"), int(count)


def categorize(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return name
    return "other"


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    cats: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        frames, n = _frames(line)
        total += n
        cats[categorize(frames)] += n
        leaf = frames[-1]
        # "function (/long/path/site-packages/pkg/mod.py:123)" -> "function (pkg/mod.py)"
        func, _, where = leaf.partition(" (")
        where = where.rstrip(")").rsplit(":", 1)[0]
        for marker in ("site-packages/", "/work/main/", "python3.11/"):
            if marker in where:
                where = where.split(marker, 1)[1]
        leaves[f"{func} ({where})"] += n
    return {
        "samples": total,
        "categories": [(name, n / total) for name, n in cats.most_common()] if total else [],
        "top_self": [(name, n / total) for name, n in leaves.most_common(top)] if total else [],
    }
