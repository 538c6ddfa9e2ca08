"""Open edX events in, Accredible credentials out, on the real broker with a real worker: the
same exactly-once sink as for Credly (award, penalty, faults, a crash at the call)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Iterator

import pytest
import yaml

from badges.accredible.models import template_uuid
from badges.schemas.catalog import load_catalog
from badges.wire.decode import KafkaDecoder
from tests.support.cluster import wait_until
from tests.support.configs import demo_template
from tests.support.openedx import COURSE_PASSING
from tests.support.stack import ACC_KEY_ENV, ACC_ORG, Stack, make_accredible_stack

GROUP = 4711
TEMPLATE = template_uuid(ACC_ORG, GROUP)
COURSE = "course-v1:Org+Accredible+2024"
ISSUE = {"method": "POST", "path": "/credentials$"}
ADMIN = "admin-token-acc-0123456789"


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_accredible_stack(broker.bootstrap, tmp_path_factory.mktemp("acc"), [(GROUP, "Accredible demo")], "acc")
    s.configure_accredible(yaml.safe_dump({
        "organizations": [{"uuid": ACC_ORG, "provider": "accredible", "api_key_env": ACC_KEY_ENV}],
        "templates": [demo_template(TEMPLATE, COURSE)],
    }, sort_keys=False))
    s.start_worker(BADGES_CREDLY_TIMEOUT_S="1", BADGES_CREDLY_MAX_ATTEMPTS="4", BADGES_ADMIN_TOKEN=ADMIN)
    yield s
    s.stop()
    s.emulator.stop_thread()
    assert s.accredible is not None
    s.accredible.stop_thread()


def complete(stack: Stack, learner: int, passing: bool = True) -> tuple[str, Any]:
    event = stack.event(COURSE_PASSING, learner, {"is_passing": passing, "course.course_key": COURSE})
    stack.send([event])
    return f"learner{learner}@example.com", event


def of(credentials: list[dict[str, Any]], email: str) -> list[dict[str, Any]]:
    return [c for c in credentials if c["recipient"]["email"] == email]


def posts_for(stack: Stack, email: str) -> list[dict[str, Any]]:
    return [r for r in stack.accredible_requests() if r["method"] == "POST" and r["path"].endswith("/credentials")
            and ((r.get("body") or {}).get("credential") or {}).get("recipient", {}).get("email") == email]


def issued(stack: Stack, email: str) -> list[dict[str, Any]]:
    return of(stack.wait_credentials(lambda c: bool(of(c, email))), email)


def test_org_add_and_sync_store_the_group_as_a_template(stack: Stack) -> None:
    exported = stack.cli("config", "export").stdout
    assert "provider: accredible" in exported and TEMPLATE in exported
    assert "# Accredible demo - Accredible state: active" in exported


def test_org_add_with_a_key_accredible_rejects_stores_nothing(stack: Stack) -> None:
    other = "5e1d0c2a-0000-4000-8000-0000000000ff"
    refused = stack.cli("org", "add", "--provider", "accredible", "--uuid", other, "--api-key", "not-the-key-0042",
                        check=False)
    assert refused.returncode != 0
    assert f"Accredible rejected the token for organization {other} (401); nothing stored" in refused.stderr + refused.stdout
    assert "not-the-key-0042" not in refused.stderr + refused.stdout
    assert other not in stack.cli("config", "export").stdout
    wrong = stack.cli("org", "add", "--provider", "badgr", "--uuid", other, "--api-key-env", ACC_KEY_ENV, check=False)
    assert wrong.returncode == 2 and "credly, accredible" in wrong.stderr + wrong.stdout


def test_a_credly_webhook_for_the_accredible_organization_is_refused_without_calling_credly(stack: Stack) -> None:
    import httpx

    before = len(stack.credly_requests())
    answer = httpx.post(f"{stack.workers[0].url}/credly/webhook", timeout=10,
                        json={"id": "0e8d0c7b-1111-4222-8333-944455556666", "organization_id": ACC_ORG})
    assert answer.status_code == 404 and "accredible" in answer.json()["error"]
    assert len(stack.credly_requests()) == before


def test_completion_issues_one_credential_and_an_awarded_event_with_origin_accredible(stack: Stack) -> None:
    email, event = complete(stack, 901)
    [credential] = issued(stack, email)
    ce_time = datetime.fromisoformat(dict(event.headers)["ce_time"].decode())
    assert credential["group_id"] == GROUP and credential["recipient"]["name"] == "Ada Lovelace"
    assert credential["issued_on"] == ce_time.astimezone(UTC).date().isoformat() and not credential["expired"]
    assert len(posts_for(stack, email)) == 1
    # the penalty takes it back: Accredible expires the credential, once
    complete(stack, 901, passing=False)
    [expired] = of(stack.wait_credentials(lambda c: any(x["expired"] for x in of(c, email))), email)
    assert expired["id"] == credential["id"]
    puts = [r for r in stack.accredible_requests() if r["method"] == "PUT" and r["path"].endswith(f"/{credential['id']}")]
    assert len(puts) == 1 and puts[0]["body"] == {"credential": {"expired_on": datetime.now(UTC).date().isoformat()}}
    decoder = KafkaDecoder(load_catalog(), skip_own_output=False)

    def lifecycle() -> list[tuple[str, str, str]] | None:
        seen = []
        for m in stack.read(stack.settings.lifecycle_topic, min_count=1):
            if dict(m.headers() or []).get("ce_type", b"").startswith(b"org.openedx.learning.badge."):
                ev = decoder.decode(m.headers(), m.value(), "lifecycle", None)
                if ev.learner.id == 901:
                    seen.append((ev.event_type, ev.payload["template"]["uuid"], ev.payload["template"]["origin"]))
        return seen if len(seen) >= 2 else None

    seen = wait_until(lifecycle, what="awarded and revoked events of learner 901")
    assert ("org.openedx.learning.badge.awarded.v1", TEMPLATE, "accredible") in seen
    assert ("org.openedx.learning.badge.revoked.v1", TEMPLATE, "accredible") in seen


def test_500_500_ok_gives_exactly_one_credential(stack: Stack) -> None:
    stack.accredible_fault(mode="status", status=500, times=2, **ISSUE)
    email, _ = complete(stack, 902)
    assert len(issued(stack, email)) == 1
    assert [r["status"] for r in posts_for(stack, email)] == [500, 500, 200]


def test_timeout_after_accredible_stored_the_credential_is_reconciled_not_duplicated(stack: Stack) -> None:
    stack.accredible_fault(mode="store_then_hang", times=1, hang_s=5, **ISSUE)
    email, _ = complete(stack, 903)
    issued(stack, email)
    wait_until(lambda: [r for r in stack.accredible_requests() if r["path"].endswith("/credentials/search")
                        and (r.get("body") or {}).get("email") == email], what="a lookup after the timeout")
    sentinel, _ = complete(stack, 904)
    issued(stack, sentinel)
    assert len(of(stack.accredible_credentials(), email)) == 1 and len(posts_for(stack, email)) == 1


def test_sigkill_while_accredible_holds_a_stored_credential_then_restart_issues_no_duplicate(stack: Stack) -> None:
    stack.accredible_fault(mode="store_then_hang", times=1, hang_s=30, **ISSUE)
    email, _ = complete(stack, 905)
    wait_until(lambda: len(posts_for(stack, email)) >= 1, interval=0.02, what="the issue call")
    stack.restart_worker()
    sentinel, _ = complete(stack, 906)
    issued(stack, sentinel)
    wait_until(lambda: [r for r in stack.accredible_requests() if r["path"].endswith("/credentials/search")
                        and (r.get("body") or {}).get("email") == email], what="the restarted worker's lookup")
    assert len(of(stack.accredible_credentials(), email)) == 1 and len(posts_for(stack, email)) == 1


def test_an_intent_never_completed_is_carried_out_after_a_restart_looking_up_first(stack: Stack) -> None:
    """The reconciler with Accredible: a badge record the issuance table has not applied is
    issued after a restart, with a lookup before the POST, without any new decision."""
    learner = 910
    email = f"learner{learner}@example.com"
    stack.plant_unfinished_intent(learner, TEMPLATE, ACC_ORG, "2024-05-01T23:20:30+00:00")
    stack.restart_worker()
    [credential] = issued(stack, email)
    assert credential["group_id"] == GROUP and credential["issued_on"] == "2024-05-01"
    searches = [r["seq"] for r in stack.accredible_requests()
                if r["path"].endswith("/credentials/search") and (r.get("body") or {}).get("email") == email]
    [post] = [r["seq"] for r in posts_for(stack, email)]
    assert searches and searches[0] < post, "an intent's outcome is unknown: Accredible is asked first"


def test_the_admin_api_sync_pulls_a_new_group_as_an_inactive_template(stack: Stack) -> None:
    import httpx

    assert stack.accredible is not None
    stack.accredible.state.seed({"groups": [{"id": 4712, "org": ACC_ORG, "name": "Added later"}]})
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    url = stack.workers[0].url
    answer = httpx.post(f"{url}/api/templates/sync", json={"organization": ACC_ORG}, headers=bearer, timeout=30)
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["organizations"]
    assert (result["pulled"], result["new"]) == (2, 1)
    later = httpx.get(f"{url}/api/templates/{template_uuid(ACC_ORG, 4712)}", headers=bearer, timeout=10).json()
    assert (later["name"], later["active"]) == ("Added later", False)
