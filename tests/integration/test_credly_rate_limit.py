"""When the Credly rate limit, not the worker, holds badges back, the dashboard and the metrics
say so (issue 20): a real worker on the embedded broker, the Credly emulator over loopback."""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest
from tests.support.cluster import VIEWER_TOKEN, wait_until
from tests.support.configs import config_yaml, demo_template
from tests.support.openedx import COURSE_PASSING
from tests.support.stack import Stack, make_stack

TEMPLATE = "7d4f6a52-0000-4000-8000-0000000000f7"
COURSE = "course-v1:Org+Rate+2024"
AUTH = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("rate"), [(TEMPLATE, "Rate")], "rate")
    s.configure(config_yaml(demo_template(TEMPLATE, COURSE, with_penalty=False)))
    s.start_worker(BADGES_CREDLY_RATE_PER_S="2")  # 2 calls/s: 12 badges take ~6 s
    yield s
    s.stop()
    s.emulator.stop_thread()


def test_a_backlog_held_back_by_the_rate_limit_shows_on_the_dashboard_and_in_the_metrics(stack: Stack) -> None:
    worker = stack.workers[0]
    stack.send([stack.event(COURSE_PASSING, 900 + i, {"is_passing": True, "course.course_key": COURSE})
                for i in range(12)])

    def limiting() -> dict | None:
        rate = httpx.get(f"{worker.url}/api/dashboard", headers=AUTH, timeout=10).json()["credly_rate"]
        return rate if rate["limiting"] and rate["waiting_calls"] > 0 else None

    rate = wait_until(limiting, timeout=60, interval=0.1, what="the dashboard saying the rate limit holds badges back")
    assert rate["rate_per_s"] == 2.0 and rate["shared"] is False
    page = httpx.get(f"{worker.url}/", headers={**AUTH, "Accept": "text/html"}, timeout=10).text
    assert "The Credly rate limit is holding badges back" in page
    metrics = httpx.get(f"{worker.url}/metrics", timeout=10).text
    assert "badges_credly_rate_limit_waiting_calls " in metrics
    stack.wait_badges(lambda b: len(b) >= 12, timeout=60)
    waited = next(float(line.split()[-1]) for line in httpx.get(f"{worker.url}/metrics", timeout=10).text.splitlines()
                  if line.startswith("badges_credly_rate_limited_seconds_total "))
    assert waited > 1.0  # 12 calls spaced 0.5 s apart wait ~33 s in all; far more than 1
