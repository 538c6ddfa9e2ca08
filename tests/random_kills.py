"""Run the random-SIGKILL scale-out test many times in a row and print the totals (not part of CI).

    .venv/bin/python -m tests.random_kills            # 20 runs, seeds 1..20
    .venv/bin/python -m tests.random_kills --runs 5 --first-seed 100
    .venv/bin/python -m tests.random_kills --kills 6   # more takeovers per run

Each run is ``tests/integration/test_scale_out.py`` with ``BADGES_SCALE_OUT_SEED`` set: three
workers with the production store, four SIGKILLs of random busy workers (``--kills``), and the
outcome checked against one clean pass of the engine (missing, unexpected, duplicate and wrongly
revoked badges, progress, and the offset ledger). A failing run's pytest output is kept under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("missing", "unexpected", "not revoked", "wrongly revoked", "twice")


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tests.random_kills", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--kills", type=int, default=4, help="SIGKILLs per run (BADGES_SCALE_OUT_KILLS)")
    p.add_argument("--out", type=Path, default=ROOT / "artifacts" / "random-kills")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    totals = {k: 0 for k in KINDS} | {"passed": 0, "failed": 0, "offsets past unapplied work": 0}
    for seed in range(a.first_seed, a.first_seed + a.runs):
        t0 = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x", "-m", "soak",
             "tests/integration/test_scale_out.py"],
            cwd=ROOT, env={**os.environ, "BADGES_SCALE_OUT_SEED": str(seed), "BADGES_SCALE_OUT_KILLS": str(a.kills)},
            capture_output=True, text=True,
        )
        output = proc.stdout + proc.stderr
        ok = proc.returncode == 0
        totals["passed" if ok else "failed"] += 1
        if not ok:
            (a.out / f"seed-{seed}.txt").write_text(output)
            # the workers' logs and the ledger, before pytest rotates its temporary directories
            for tmp in sorted(set(re.findall(r"(/tmp/pytest-of-[^/]+/pytest-\d+/scale\d*)", output))):
                shutil.copytree(tmp, a.out / f"seed-{seed}-{Path(tmp).parent.name}", dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("data"))
            found = re.search(r"Credly differs from a clean run: (\{.*?\})\n", output)
            if found:
                for kind in KINDS:
                    m = re.search(rf"'{kind}': \[(.*?)\]", found.group(1))
                    if m and m.group(1).strip():
                        totals[kind] += m.group(1).count("(")
            if "past offsets never applied" in output:
                totals["offsets past unapplied work"] += 1
        print(f"seed {seed}: {'ok' if ok else 'FAILED'} in {time.time() - t0:.0f}s", flush=True)
    print(" · ".join(f"{k}: {v}" for k, v in totals.items()))
    return 0 if not totals["failed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
