"""The web view in a real headless Chromium (Debian's, driven by Playwright): what a person sees.

Needs /usr/bin/chromium (``python -m tests.setup_browser`` installs it); Playwright's own browser
downloads are never used. Saves the learner page as ``artifacts/learner-page.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.support.cluster import VIEWER_AUTH, VIEWER_TOKEN, WorkerProcess, wait_until
from tests.support.configs import config_yaml, passing, requirement, rule, template
from tests.support.openedx import COURSE_PASSING, DEMO_COURSE
from tests.support.stack import Stack, make_stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DEMO_T = "7d4f6a52-0000-4000-8000-0000000000aa"
OTHER_T = "7d4f6a52-0000-4000-8000-0000000000bb"
OTHER_COURSE = "course-v1:OpenedX+Other+2024"
CERT_CREATED = "org.openedx.learning.certificate.created.v1"
LEARNER = 501

CONFIG = config_yaml(
    template(DEMO_T, [requirement("demo", passing(DEMO_COURSE), description="Pass the Demo course")]),
    template(OTHER_T, [
        requirement("passed", passing(OTHER_COURSE), group="A", description="Pass the Other course"),
        requirement("certificate", [rule("course.course_key", OTHER_COURSE)], event_type=CERT_CREATED,
                    group="B", description="Earn the Other course certificate"),
    ]),
)

@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("browser"),
                   [(DEMO_T, "Demo Course Completion"), (OTHER_T, "Other Course Expert")], "browser")
    s.configure(CONFIG)
    s.start_worker()
    yield s
    s.stop()
    s.emulator.stop_thread()


def _learner(worker: WorkerProcess) -> dict[str, Any] | None:
    r = httpx.get(f"{worker.url}/api/learners/{LEARNER}", headers=VIEWER_AUTH, timeout=10)
    if r.status_code != 200:
        return None
    data = r.json()
    by_uuid = {t["template"]: t for t in data["templates"]}
    issued = (by_uuid[DEMO_T].get("issuance") or {}).get("status") == "issued"
    group_a = by_uuid[OTHER_T]["groups"][0]["fulfilled"]
    return data if issued and group_a else None


def test_dashboard_and_learner_page_in_chromium(stack: Stack, artifacts_dir: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    worker = stack.workers[0]
    stack.send([
        stack.event(COURSE_PASSING, LEARNER, {"is_passing": True, "course.course_key": DEMO_COURSE},
                    name="Ada Lovelace", username="ada", email="ada@example.com"),
        stack.event(COURSE_PASSING, LEARNER, {"is_passing": True, "course.course_key": OTHER_COURSE},
                    name="Ada Lovelace", username="ada", email="ada@example.com"),
    ])
    wait_until(lambda: _learner(worker), timeout=60, interval=0.2, what="learner 501's badge issued")

    with sync_playwright() as pw:
        assert CHROMIUM.exists(), "needs Debian's chromium: run `python -m tests.setup_browser` (make test does)"
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            # signed out: the login page, then the token, then the page asked for
            page.goto(f"{worker.url}/")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            expect(page.get_by_text("Ada Lovelace")).to_have_count(0)
            page.get_by_label("Viewer or admin token").fill("not-the-token")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_have_text("That token is not valid.")
            page.get_by_label("Viewer or admin token").fill(VIEWER_TOKEN)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
            expect(page.locator(".stat", has_text="active templates").locator(".num")).to_have_text("2")
            expect(page.get_by_text(stack.app_id).first).to_be_visible()
            expect(page.get_by_role("heading", name="Consumers of this worker")).to_be_visible()

            # find the learner with the header's search box, as a person would
            page.get_by_label("Learner id (LMS user id)").fill(str(LEARNER))
            page.get_by_role("button", name="Open").click()
            page.wait_for_url(f"**/learners/{LEARNER}")
            expect(page.get_by_role("heading", name="Ada Lovelace", level=1)).to_be_visible()

            demo = page.locator(f'section[data-template="{DEMO_T}"]')
            expect(demo.get_by_role("heading", name="Demo Course Completion")).to_be_visible()
            expect(demo.locator(".pill", has_text="badge awarded")).to_be_visible()
            expect(demo.locator(".issuance .pill", has_text="issued")).to_be_visible()
            expect(demo.get_by_text("Awarded", exact=True)).to_be_visible()

            other = page.locator(f'section[data-template="{OTHER_T}"]')
            expect(other.locator(".pill", has_text="1 of 2 groups fulfilled")).to_be_visible()
            group_a = other.locator(".group.fulfilled")
            group_b = other.locator(".group.missing")
            expect(group_a).to_have_count(1)
            expect(group_b).to_have_count(1)
            expect(group_a.get_by_role("heading")).to_contain_text("Group A")
            expect(group_a).to_contain_text("Fulfilled by")
            expect(group_a).to_contain_text("course.passing.status.updated.v1")
            expect(group_b.get_by_role("heading")).to_contain_text("Group B")
            expect(group_b).to_contain_text("Missing: no matching event yet")
            expect(group_b).to_contain_text("Earn the Other course certificate")
            # colours tell fulfilled from missing at a glance
            green = group_a.evaluate("e => getComputedStyle(e.querySelector('.mark')).backgroundColor")
            amber = group_b.evaluate("e => getComputedStyle(e.querySelector('.mark')).backgroundColor")
            assert green != amber

            page.screenshot(path=str(artifacts_dir / "learner-page.png"), full_page=True)

            # signing out ends the session: the learner page asks for the token again
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            page.goto(f"{worker.url}/learners/{LEARNER}")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        finally:
            browser.close()
    assert (artifacts_dir / "learner-page.png").stat().st_size > 10_000
