"""Schema registry basic auth (SPEC §9): a Confluent-Cloud-like secret works end to end, and a
refused one is a configuration error: logged once, the worker not ready with the reason, the
batch neither retried forever nor dead-lettered."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from tests.support import openedx
from tests.support.cluster import wait_until
from tests.support.configs import config_yaml, demo_template
from tests.support.openedx import COURSE_PASSING, DEMO_COURSE
from tests.support.registry import StandInRegistry
from tests.support.stack import Stack, make_stack

DEMO_T = "7d4f6a52-0000-4000-8000-0000000000aa"
KEY, SECRET = "SRKEY0123456789", "Zx/9+a:b@c%2Fd+/=="  # every character a URL would mangle


@pytest.fixture(scope="module")
def registry() -> Iterator[StandInRegistry]:
    with StandInRegistry(credentials=(KEY, SECRET)) as reg:
        yield reg


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("registry-auth"), [(DEMO_T, "Demo")], "regauth")
    s.configure(config_yaml(demo_template(DEMO_T, DEMO_COURSE)))
    yield s
    s.stop()
    s.emulator.stop_thread()


def registry_env(registry: StandInRegistry, password: str) -> dict[str, str]:
    return {"BADGES_SCHEMA_REGISTRY_URL": registry.url, "BADGES_SCHEMA_REGISTRY_USERNAME": KEY,
            "BADGES_SCHEMA_REGISTRY_PASSWORD": password}


def test_refused_credentials_stop_ingestion_with_the_reason(stack: Stack, registry: StandInRegistry) -> None:
    schema_id = registry.register(f"{stack.input_topic}-{COURSE_PASSING}.CloudEvent", openedx.value_schema_string(COURSE_PASSING))
    worker = stack.start_worker("refused", **registry_env(registry, "wrong/" + SECRET))  # type: ignore[arg-type]  # the variables never name name or wait
    wait_until(lambda: worker.health().get("ingest_partitions"), timeout=30, what="ingest assigned")
    refused_before = len(registry.requests)
    stack.send([stack.event(COURSE_PASSING, 1501 + i, {"is_passing": True, "course.course_key": DEMO_COURSE},
                            value_schema_id=schema_id) for i in range(3)])
    health = wait_until(lambda: (h := worker.health()).get("problems") and h, timeout=30, what="a problem reported")
    assert health["ready"] is False
    reason = health["problems"]["schema_registry"]
    assert "refused our credentials (401)" in reason and "BADGES_SCHEMA_REGISTRY_PASSWORD" in reason
    assert SECRET not in str(health)
    refused = len(registry.requests) - refused_before
    time.sleep(3)  # a retrying loop would have asked again by now (its first delay is 0.5 s)
    assert len(registry.requests) - refused_before == refused <= 3  # not retried
    worker.stop()
    log = worker.log_path.read_text()
    assert log.count("refused our credentials") == 1, log
    assert SECRET not in log
    assert stack.credly_badges() == []
    # the events were neither lost nor dead-lettered: a worker with the right secret takes them
    stack.workers.remove(worker)
    stack.start_worker("accepted", **registry_env(registry, SECRET))  # type: ignore[arg-type]  # the variables never name name or wait
    badges = stack.wait_badges(lambda b: len(b) == 3, what="3 badges once the secret is right")
    assert sorted(b["recipient_email"] for b in badges) == [f"learner{1501 + i}@example.com" for i in range(3)]
