"""The badge-dense load (issue 20): about one badge per 10 events, course-passing events only.

The main load (bench/load.py) completes a badge every ~23 events, so the per-badge cost of the
sink (intent, Credly call, outcome, lifecycle event) hides behind the per-event cost. This one
makes it visible:

- T = 100 templates over C = 300 courses (``course-v1:DenseX+D{k}+2024``): ``single`` (pass one
  course), ``and`` (pass both of two courses), ``or`` (pass one of two courses); every fifth
  template also has a penalty: failing one of its courses resets it (and revokes its badge);
- U = 5,000 learners, each taking a few courses: failing grades, a pass, sometimes a late fail;
  about 50,000 ``course.passing.status.updated`` events in all.

The oracle is the same as the main load's: written from SPEC §2, not from the engine. Events are
keyed by course (edx-event-bus-kafka's key for this type), so a learner's events of two courses
may travel on different input partitions and be applied in either order; the two courses of a
template are chosen so that their keys land on the same input partition (librdkafka's default
partitioner: CRC-32 of the key), which keeps each template's events in plan order.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import time
import zlib
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

from bench import load
from bench.load import EVENT_TYPES, ORG, PASSING, Load, Planned, _pick, _rule, template_uuid

KINDS = ("single", "and", "or")
PENALTY_EVERY = 5  # every fifth template has a penalty: 20 %
COURSES = 300
INPUT_PARTITIONS = 3
COURSES_PER_LEARNER = ((3, 0.2), (4, 0.4), (5, 0.4))
TEMPLATE_COURSE_SHARE = 0.45  # a course some template names, else one no template names
FAIL_FIRST = 0.7
PASS = 0.85
LATE_FAIL = 0.15


def kind_of(j: int) -> str:
    return KINDS[j % len(KINDS)]


def has_penalty(j: int) -> bool:
    return j % PENALTY_EVERY == PENALTY_EVERY - 1


def dense_course(k: int) -> str:
    return f"course-v1:DenseX+D{k:05d}+2024"


def course_key(c: str) -> bytes:
    """The framed Avro key edx-event-bus-kafka writes for this course's passing events."""
    from tests.support import openedx

    return openedx._encode_key(c, openedx.KEY_SCHEMA_ID)


def input_partition(c: str, partitions: int = INPUT_PARTITIONS) -> int:
    """librdkafka's default (consistent_random) partitioner for a keyed message."""
    return zlib.crc32(course_key(c)) % partitions


@lru_cache(maxsize=4)
def template_courses(m: int) -> tuple[tuple[str, ...], ...]:
    """The course(s) of each template; a two-course template's courses share an input
    partition. Courses past the templates' are named by none (noise)."""
    by_partition: dict[int, list[str]] = {}
    for k in range(COURSES):
        c = dense_course(k)
        by_partition.setdefault(input_partition(c), []).append(c)
    pools = [list(v) for _, v in sorted(by_partition.items())]
    out = []
    for j in range(m):
        pool = pools[j % len(pools)]
        n = 1 if kind_of(j) == "single" else 2
        out.append(tuple(pool.pop(0) for _ in range(n)))
    return tuple(out)


@lru_cache(maxsize=4)
def _courses(m: int) -> dict[str, list[int]]:
    """Course -> the templates naming it."""
    by: dict[str, list[int]] = {}
    for j, cs in enumerate(template_courses(m)):
        for c in cs:
            by.setdefault(c, []).append(j)
    return by


def template_doc(j: int, m: int) -> dict[str, Any]:
    cs, kind = template_courses(m)[j], kind_of(j)
    reqs = [{"id": f"passed-{i}", "event_type": PASSING, "group": "any" if kind == "or" else None,
             "rules": [_rule("is_passing", "true"), _rule("course.course_key", c)]} for i, c in enumerate(cs)]
    penalties = [{"id": f"failed-{i}", "event_type": PASSING, "requirements": [r["id"] for r in reqs],
                  "rules": [_rule("is_passing", "false"), _rule("course.course_key", c)]}
                 for i, c in enumerate(cs)] if has_penalty(j) else []
    return {
        "uuid": template_uuid(j), "organization": ORG, "name": f"Dense {kind} {j}",
        "description": f"{kind} template on {', '.join(cs)}", "image_url": f"https://img.example/{j}.png",
        "credly_state": "active", "is_active": True, "requirements": reqs, "penalties": penalties,
    }


def config_entities(m: int) -> list[Any]:
    return load.config_entities(m, lambda j: template_doc(j, m))


def emulator_seed(m: int) -> dict[str, Any]:
    return load.emulator_seed(m, lambda j: f"Dense {kind_of(j)} {j}")


def learner_plan(seed: int, learner: int, m: int) -> list[Planned]:
    rng = random.Random(f"dense:{seed}:{learner}")
    named = sorted(_courses(m))
    noise = [dense_course(k) for k in range(COURSES) if dense_course(k) not in _courses(m)]
    courses: list[str] = []
    for _ in range(_pick(rng, COURSES_PER_LEARNER)):
        pool = named if rng.random() < TEMPLATE_COURSE_SHARE or not noise else noise
        c = rng.choice(pool)
        if c not in courses:
            courses.append(c)
    out: list[Planned] = []
    for c in courses:
        if rng.random() < FAIL_FIRST:
            out += [(PASSING, c, (("is_passing", False),))] * rng.randint(1, 3)
        if rng.random() < PASS:
            out.append((PASSING, c, (("is_passing", True),)))
            if rng.random() < LATE_FAIL:
                out.append((PASSING, c, (("is_passing", False),)))
    return out


def expected_outcomes(plan: list[Planned], m: int) -> dict[int, tuple[str, int, int]]:
    """Template -> (final status, position of the completing event, of the revoking one or -1),
    by SPEC §2: requirements are fulfilled by passing; a penalty (failing one of a penalty
    template's courses) resets them and revokes an awarded badge; a revoked badge is never
    awarded again by processing."""
    tcourses = template_courses(m)
    by_course = _courses(m)
    fulfilled: dict[int, set[str]] = {}
    badge: dict[int, tuple[str, int, int]] = {}
    for pos, (_etype, c, fields) in enumerate(plan):
        passing = dict(fields)["is_passing"]
        for j in by_course.get(c or "", ()):
            f = fulfilled.setdefault(j, set())
            if not passing:
                if has_penalty(j):
                    f.clear()
                    if badge.get(j, ("",))[0] == "awarded":
                        badge[j] = ("revoked", badge[j][1], pos)
                continue
            f.add(c or "")
            if j in badge:
                continue
            complete = bool(f) if kind_of(j) != "and" else set(tcourses[j]) <= f
            if complete:
                badge[j] = ("awarded", pos, -1)
    return badge


def generate(seed: int, learners: int, m: int) -> Load:
    from tests.support import openedx

    from badges.wire.framing import frame

    t0 = time.monotonic()
    etype_index = EVENT_TYPES.index(PASSING)
    built: dict[tuple[str, bool, int], bytes] = {}
    per_learner: dict[int, list[tuple[int, bytes | None, bytes]]] = {}
    plans = {lid: learner_plan(seed, lid, m) for lid in range(1, learners + 1)}
    for lid, plan in plans.items():
        msgs = []
        for _etype, c, fields in plan:
            passing = dict(fields)["is_passing"]
            body = built.get((c or "", passing, lid))
            if body is None:
                data = openedx.event_data(PASSING, user_id=lid, name=f"Learner {lid}",
                                          fields={"is_passing": passing, "course.course_key": c})
                body = built[(c or "", passing, lid)] = frame(openedx.VALUE_SCHEMA_ID, openedx.serialize(PASSING, data))
            msgs.append((etype_index, course_key(c or ""), body))
        per_learner[lid] = msgs
    messages, index = load.in_production_order(seed, per_learner)
    expected = {}
    for lid, plan in plans.items():
        for j, (status, pos, rpos) in expected_outcomes(plan, m).items():
            expected[(lid, j)] = (status, index[(lid, pos)], index[(lid, rpos)] if rpos >= 0 else -1)
    counts = Counter(EVENT_TYPES[t] for t, *_ in messages)
    return Load(seed, learners, m, list(EVENT_TYPES), messages, expected, time.monotonic() - t0, dict(counts))


def load_or_generate(cache_dir: Path, seed: int, learners: int, m: int) -> tuple[Load, bool]:
    """The load from the cache, or generated (and cached). Returns (load, from_cache)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:10]
    path = cache_dir / f"dense-s{seed}-u{learners}-m{m}-{digest}.pickle"
    if path.exists():
        with path.open("rb") as fh:
            return pickle.load(fh), True
    out = generate(seed, learners, m)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as fh:
        pickle.dump(out, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return out, False


if __name__ == "__main__":  # python -m bench.dense: the load's shape
    dense = generate(1, 5000, 100)
    print(f"{len(dense.messages)} events, {dense.awarded} badges ({dense.revoked} revoked): "
          f"one per {len(dense.messages) / max(dense.awarded, 1):.1f} events; {dense.generated_s:.1f}s")
