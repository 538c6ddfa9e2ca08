"""The benchmark's load: M badge templates, U learners' event histories, and what must result.

Templates (``kind`` = index mod 6, each on its own course ``course-v1:BenchX+C{j}+2024``):

- ``single``: one requirement, passing the course;
- ``and``: three groups: verified enrollment AND passing AND a certificate;
- ``or``: (passing run 2024 OR run 2025) AND (certificate of run 2024 OR run 2025);
- ``penalty``: passing, with a penalty on failing the course (resets it, revokes the badge);
- ``nofm`` (SPEC §8): 2 of {verified enrollment, passing, certificate}, passing within a window
  open since 2020, all within ``complete_within``, the badge expiring after a year;
- ``badges`` (SPEC §8): the badge of template ``j - 1`` (an ``nofm``, never revoked) AND passing
  the course; a learner who takes this course takes the prerequisite's course first.

Each learner has one or two *activities* in distinct courses (a template's course with
probability ``TEMPLATE_SHARE``, else a course no template names): an enrollment, some failing
grade updates, perhaps a pass, then perhaps a certificate and a late fail. Some learners also
register and log in (event types no rule uses: ingestion drops them after decoding).

Every message is a real edx-event-bus-kafka message for its learner: the Avro body is written by
openedx-events' own serializer from that learner's event data (tests/support/openedx.py), the key
is the framed natural key, and headers are built at send time (``ce_id``, ``ce_time``), so the
body of an identical (type, learner, fields) event is serialized once and reused. Serializing
costs ~100 µs per body, so a load is generated once (on two processes) and cached on disk.

What must happen is derived from the plans by a small oracle written from SPEC §2, not by the
worker's engine: which (learner, template) get a badge, which are revoked, and which message
completes each (the latency of that badge is measured from that message's ``ce_time``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

PASSING = "org.openedx.learning.course.passing.status.updated.v1"
ENROLLED = "org.openedx.learning.course.enrollment.created.v1"
CERTIFIED = "org.openedx.learning.certificate.created.v1"
REGISTERED = "org.openedx.learning.student.registration.completed.v1"
LOGIN = "org.openedx.learning.auth.session.login.completed.v1"
EVENT_TYPES = (PASSING, ENROLLED, CERTIFIED, REGISTERED, LOGIN)
RULE_TYPES = frozenset({PASSING, ENROLLED, CERTIFIED})  # the types some template names

ORG = "0b8a3f0e-0000-4000-8000-00000000b001"
TOKEN = "tok-bench-0123456789abcdef"
TOKEN_ENV = "CREDLY_TOKEN_BENCH"
KINDS = ("single", "and", "or", "penalty", "nofm", "badges")
FORMAT = 5  # bump when the generated load changes

# The mix (probabilities); see the module docstring.
TWO_ACTIVITIES = 0.2
TEMPLATE_SHARE = 0.5
VERIFIED = 0.8
FAILS = ((0, 0.5), (1, 0.35), (2, 0.15))
PASS = 0.3
CERT_IF_PASSED = 0.5
LATE_FAIL_IF_PASSED = 0.15
REGISTER = 0.25
LOG_IN = 0.25
SESSION = 0.01  # share of the stream during which one learner's events happen


def course(j: int, run: int = 2024) -> str:
    return f"course-v1:BenchX+C{j:05d}+{run}"


def noise_course(k: int) -> str:
    return f"course-v1:BenchX+N{k:05d}+2024"


def template_uuid(j: int) -> str:
    return f"7d4f6a52-0000-4000-8000-{j:012x}"


def kind_of(j: int) -> str:
    return KINDS[j % len(KINDS)]


# --- templates ---------------------------------------------------------------------------------


def _rule(path: str, value: str) -> dict[str, str]:
    return {"key_path": path, "operator": "=", "value": value}


def _passing(rid: str, c: str, passing: bool = True, group: str | None = None) -> dict[str, Any]:
    return {"id": rid, "event_type": PASSING, "group": group,
            "rules": [_rule("is_passing", "true" if passing else "false"), _rule("course.course_key", c)]}


def template_doc(j: int) -> dict[str, Any]:
    """Template ``j`` as a configuration entity (``config.entities.Template`` fields)."""
    c, kind = course(j), kind_of(j)
    penalties: list[dict[str, Any]] = []
    rules: dict[str, Any] = {}
    if kind == "single":
        reqs = [_passing("passed", c)]
    elif kind == "and":
        reqs = [
            {"id": "enrolled", "event_type": ENROLLED,
             "rules": [_rule("course.course_key", c), _rule("mode", "verified")]},
            _passing("passed", c),
            {"id": "certified", "event_type": CERTIFIED, "rules": [_rule("course.course_key", c)]},
        ]
    elif kind == "or":
        rerun = course(j, 2025)
        reqs = [
            _passing("passed-2024", c, group="passed"),
            _passing("passed-2025", rerun, group="passed"),
            {"id": "certified-2024", "event_type": CERTIFIED, "group": "certified",
             "rules": [_rule("course.course_key", c)]},
            {"id": "certified-2025", "event_type": CERTIFIED, "group": "certified",
             "rules": [_rule("course.course_key", rerun)]},
        ]
    elif kind == "penalty":
        reqs = [_passing("passed", c)]
        penalties = [{"id": "failed", "event_type": PASSING, "requirements": ["passed"],
                      "rules": [_rule("is_passing", "false"), _rule("course.course_key", c)]}]
    elif kind == "nofm":
        reqs = [
            {"id": "enrolled", "event_type": ENROLLED, "group": "any",
             "rules": [_rule("course.course_key", c), _rule("mode", "verified")]},
            {**_passing("passed", c, group="any"), "not_before": "2020-01-01T00:00:00Z"},
            {"id": "certified", "event_type": CERTIFIED, "group": "any",
             "rules": [_rule("course.course_key", c)]},
        ]
        rules = {"groups": {"any": {"min": 2}}, "complete_within": "P3650D", "expires_after": "P365D"}
    else:
        reqs = [{"id": "prerequisite", "badge": template_uuid(j - 1)}, _passing("passed", c)]
    return {
        "uuid": template_uuid(j), "organization": ORG, "name": f"Bench {kind} {j}",
        "description": f"{kind} template on {c}", "image_url": f"https://img.example/{j}.png",
        "credly_state": "active", "is_active": True, "requirements": reqs, "penalties": penalties,
        **rules,
    }


def config_entities(m: int, doc: Callable[[int], dict[str, Any]] = template_doc) -> list[Any]:
    """The organization and the M templates (``doc``: a template's fields by index)."""
    from badges.config.entities import Organization, Template

    org = Organization(uuid=ORG, name="Bench Org", api_key_env=TOKEN_ENV)
    return [org, *(Template.model_validate(doc(j)) for j in range(m))]


def emulator_seed(m: int, name: Callable[[int], str] = lambda j: f"Bench {kind_of(j)} {j}") -> dict[str, Any]:
    return {
        "organizations": [{"uuid": ORG, "name": "Bench Org", "token": TOKEN}],
        "templates": [{"uuid": template_uuid(j), "org": ORG, "name": name(j),
                       "description": "", "image_url": f"https://img.example/{j}.png", "state": "active"}
                      for j in range(m)],
    }


# --- plans -------------------------------------------------------------------------------------

# One planned event: (event type, course or None, fields). Fields are rule key paths (SPEC §7).
Planned = tuple[str, str | None, tuple[tuple[str, Any], ...]]


def _pick(rng: random.Random, table: tuple[tuple[int, float], ...]) -> int:
    x, acc = rng.random(), 0.0
    for value, p in table:
        acc += p
        if x < acc:
            return value
    return table[-1][0]


def learner_plan(seed: int, learner: int, m: int) -> list[Planned]:
    """One learner's events, in the order they happen (deterministic per (seed, learner, m))."""
    rng = random.Random(f"{seed}:{learner}")
    out: list[Planned] = []
    if rng.random() < REGISTER:
        out.append((REGISTERED, None, ()))
    courses: set[str] = set()
    for _ in range(2 if rng.random() < TWO_ACTIVITIES else 1):
        for _attempt in range(10):
            if m and rng.random() < TEMPLATE_SHARE:
                j = rng.randrange(m)
                c = course(j, 2025) if kind_of(j) == "or" and rng.random() < 0.5 else course(j)
            else:
                c = noise_course(rng.randrange(max(m, 50)))
            if c not in courses:
                break
        j = _courses(m).get(c)
        if j is not None and kind_of(j) == "badges" and course(j - 1) not in courses:
            courses.add(course(j - 1))
            _activity(rng, course(j - 1), out)
        courses.add(c)
        _activity(rng, c, out)
    if rng.random() < LOG_IN:
        out.append((LOGIN, None, ()))
    return out


def _activity(rng: random.Random, c: str, out: list[Planned]) -> None:
    """One course: an enrollment, some failing grades, perhaps a pass, a certificate, a late fail."""
    out.append((ENROLLED, c, (("mode", "verified" if rng.random() < VERIFIED else "audit"),)))
    out += [(PASSING, c, (("is_passing", False),))] * _pick(rng, FAILS)
    if rng.random() < PASS:
        out.append((PASSING, c, (("is_passing", True),)))
        if rng.random() < CERT_IF_PASSED:
            out.append((CERTIFIED, c, ()))
        if rng.random() < LATE_FAIL_IF_PASSED:
            out.append((PASSING, c, (("is_passing", False),)))


@lru_cache(maxsize=8)
def _courses(m: int) -> dict[str, int]:
    """Course key -> the template index it belongs to."""
    return {course(j): j for j in range(m)} | {course(j, 2025): j for j in range(m) if kind_of(j) == "or"}


def expected_outcomes(plan: list[Planned], m: int) -> dict[int, tuple[str, int, int]]:
    """The oracle: template index -> (final badge status, position in the plan of the event
    that completed it, of the one that revoked it or -1), for one learner whose events are
    applied in plan order (SPEC §2).

    Only penalty templates depend on order, and their events share a key (the course), so the
    worker applies them in plan order too. A ``badges`` template's prerequisite is an ``nofm``
    template, never revoked: whether it completes does not depend on order (which of the two
    courses' events completes it may, when they travel on different input partitions).
    """
    by_course = _courses(m)
    fulfilled: dict[int, set[str]] = {}
    badge: dict[int, tuple[str, int, int]] = {}
    for pos, (etype, c, fields) in enumerate(plan):
        j = by_course.get(c or "")
        if j is None:
            continue
        f, kind, fs = fulfilled.setdefault(j, set()), kind_of(j), dict(fields)
        run = "2025" if c and c.endswith("+2025") else "2024"
        if etype == PASSING and fs["is_passing"]:
            f.add("passed" if kind != "or" else f"passed-{run}")
        elif etype == PASSING and kind == "penalty":
            if "passed" in f:
                f.discard("passed")
                if badge.get(j, ("",))[0] == "awarded":
                    badge[j] = ("revoked", badge[j][1], pos)
            continue
        elif etype == ENROLLED and kind in ("and", "nofm") and fs["mode"] == "verified":
            f.add("enrolled")
        elif etype == CERTIFIED:
            f.add("certified" if kind != "or" else f"certified-{run}")
        if j in badge:
            continue
        if kind == "and":
            complete = {"enrolled", "passed", "certified"} <= f
        elif kind == "or":
            complete = bool(f & {"passed-2024", "passed-2025"}) and bool(f & {"certified-2024", "certified-2025"})
        elif kind == "nofm":
            complete = len(f & {"enrolled", "passed", "certified"}) >= 2
        elif kind == "badges":
            complete = "passed" in f and badge.get(j - 1, ("",))[0] == "awarded"
        else:
            complete = "passed" in f
        if complete:
            badge[j] = ("awarded", pos, -1)
            # the badge of badges that waited for this one completes in the same event
            dependent = j + 1
            if (dependent < m and kind_of(dependent) == "badges" and dependent not in badge
                    and "passed" in fulfilled.get(dependent, set())):
                badge[dependent] = ("awarded", pos, -1)
    return badge


# --- messages ----------------------------------------------------------------------------------


@dataclass
class Load:
    """A generated load, in production order."""

    seed: int
    learners: int
    templates: int
    types: list[str]  # type index -> event type
    # Per message: (type index, learner id, key, value). Identical values share one bytes object.
    messages: list[tuple[int, int, bytes | None, bytes]]
    # (learner id, template index) -> (final status, index in ``messages`` of the completing
    # event, of the revoking event or -1)
    expected: dict[tuple[int, int], tuple[str, int, int]]
    generated_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def wanted(self) -> int:
        """Messages whose event type some active rule uses (the progress agent applies them)."""
        return self.wanted_upto(None)

    def wanted_upto(self, n: int | None) -> int:
        rule_idx = {i for i, t in enumerate(self.types) if t in RULE_TYPES}
        return sum(1 for m in self.messages[:n] if m[0] in rule_idx)

    @property
    def awarded(self) -> int:
        return len(self.expected)

    @property
    def revoked(self) -> int:
        return sum(1 for s, *_ in self.expected.values() if s == "revoked")


def _bodies_for(args: tuple[int, int, int, int]) -> list[tuple[int, list[tuple[int, bytes | None, bytes]]]]:
    """Worker process: each learner's messages (type index, key, value) in plan order."""
    seed, m, first, last = args
    from tests.support import openedx

    from badges.wire.framing import frame

    out = []
    for lid in range(first, last):
        msgs: list[tuple[int, bytes | None, bytes]] = []
        built: dict[Planned, tuple[bytes | None, bytes]] = {}
        for planned in learner_plan(seed, lid, m):
            if planned not in built:
                etype, c, fields = planned
                overrides = dict(fields)
                if c is not None:
                    overrides["course.course_key"] = c
                data = openedx.event_data(etype, user_id=lid, name=f"Learner {lid}", fields=overrides)
                kf = openedx.key_field(etype)
                key = openedx._encode_key(openedx.extract_key(etype, data, kf), openedx.KEY_SCHEMA_ID) if kf else None
                built[planned] = (key, frame(openedx.VALUE_SCHEMA_ID, openedx.serialize(etype, data)))
            key, value = built[planned]
            msgs.append((EVENT_TYPES.index(planned[0]), key, value))
        out.append((lid, msgs))
    return out


def _interleave(seed: int, per_learner: dict[int, list[Any]]) -> list[tuple[int, int, int]]:
    """A global production order: each learner is active during a short stretch of the stream
    (``SESSION`` of its length, starting anywhere), learners interleave at random, and each
    learner's events keep their plan order (so badges complete all along the stream). Returns
    (learner, position in plan, global rank) sorted by rank."""
    rng = random.Random(f"order:{seed}")
    stamps: list[tuple[float, int, int]] = []
    for lid, msgs in per_learner.items():
        start = rng.random() * (1 - SESSION)
        times = sorted(start + rng.random() * SESSION for _ in msgs)
        stamps += [(t, lid, pos) for pos, t in enumerate(times)]
    stamps.sort()
    return [(lid, pos, rank) for rank, (_, lid, pos) in enumerate(stamps)]


def in_production_order(
    seed: int, per_learner: dict[int, list[tuple[int, bytes | None, bytes]]],
) -> tuple[list[tuple[int, int, bytes | None, bytes]], dict[tuple[int, int], int]]:
    """The messages (type index, learner, key, value) in production order (``_interleave``), and
    (learner, position in plan) -> index in that order."""
    index: dict[tuple[int, int], int] = {}
    messages = []
    for lid, pos, rank in _interleave(seed, per_learner):
        t, k, v = per_learner[lid][pos]
        index[(lid, pos)] = rank
        messages.append((t, lid, k, v))
    return messages, index


def generate(seed: int, learners: int, m: int, processes: int = 2) -> Load:
    t0 = time.monotonic()
    chunk = max(500, learners // (processes * 8) + 1)
    jobs = [(seed, m, a, min(a + chunk, learners + 1)) for a in range(1, learners + 1, chunk)]
    per_learner: dict[int, list[tuple[int, bytes | None, bytes]]] = {}
    if processes > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(processes) as pool:
            for part in pool.map(_bodies_for, jobs):
                per_learner.update(part)
    else:
        for job in jobs:
            per_learner.update(_bodies_for(job))
    messages, index = in_production_order(seed, per_learner)
    expected: dict[tuple[int, int], tuple[str, int, int]] = {}
    for lid in range(1, learners + 1):
        for j, (status, pos, rpos) in expected_outcomes(learner_plan(seed, lid, m), m).items():
            expected[(lid, j)] = (status, index[(lid, pos)], index[(lid, rpos)] if rpos >= 0 else -1)
    counts = Counter(EVENT_TYPES[t] for t, *_ in messages)
    return Load(seed, learners, m, list(EVENT_TYPES), messages, expected, time.monotonic() - t0, dict(counts))


def cache_key(seed: int, learners: int, m: int) -> str:
    from importlib.metadata import version

    src = Path(__file__).read_bytes()
    digest = hashlib.sha1(src + version("openedx-events").encode()).hexdigest()[:10]
    return f"load-v{FORMAT}-s{seed}-u{learners}-m{m}-{digest}.pickle"


def load_or_generate(cache_dir: Path, seed: int, learners: int, m: int, processes: int = 2) -> tuple[Load, bool]:
    """The load from the cache, or generated (and cached). Returns (load, from_cache)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / cache_key(seed, learners, m)
    if path.exists():
        with path.open("rb") as fh:
            return pickle.load(fh), True
    load = generate(seed, learners, m, processes)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as fh:
        pickle.dump(load, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return load, False
