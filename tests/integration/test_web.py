"""The worker's HTTP surface: web view (HTML and JSON), routing, admin API, Credly webhook, metrics.

Two real worker processes share one Stack (embedded broker, Credly emulator): the first has an
admin token, the second none (its admin actions must be refused). Learner requests sent to the
worker that does not own the learner are answered by the owner.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import httpx
import pytest

from badges import __version__
from badges.config.entities import DataRule, Organization, Requirement, Template
from badges.tools.config_topic import publish
from badges.wire.envelope import learner_partition
from tests.support.cluster import VIEWER_AUTH, VIEWER_TOKEN, WorkerProcess, wait_until
from tests.support.openedx import COURSE_PASSING, DEMO_COURSE
from tests.support.stack import ORG, TOKEN, Stack, make_stack

ADMIN = "adm-9f2c41d7e8b3a6c0-secret"
INLINE_TOKEN = "inline-tok-5e1d9c7b3a2f-secret"
INLINE_ORG = "0b8a3f0e-0000-4000-8000-0000000000f1"
CERT_CREATED = "org.openedx.learning.certificate.created.v1"

DEMO_T = "7d4f6a52-0000-4000-8000-0000000000aa"
OTHER_T = "7d4f6a52-0000-4000-8000-0000000000bb"
LATER_T = "7d4f6a52-0000-4000-8000-0000000000c1"  # configured inactive, activated over HTTP
EMPTY_T = "7d4f6a52-0000-4000-8000-0000000000c2"  # synced, no requirement
WH_T = "7d4f6a52-0000-4000-8000-0000000000c3"  # archived through a webhook
GONE_T = "7d4f6a52-0000-4000-8000-0000000000c4"  # deleted through a webhook
NEW_T = "7d4f6a52-0000-4000-8000-0000000000c5"  # created through a webhook
SYNC_T = "7d4f6a52-0000-4000-8000-0000000000c6"  # pulled by the HTTP sync
PROB_T = "7d4f6a52-0000-4000-8000-0000000000c7"  # a stale key path: a compile problem
OTHER_COURSE = "course-v1:OpenedX+Other+2024"
LATER_COURSE = "course-v1:OpenedX+Later+2024"


def _course_req(rid: str, course: str, group: str | None = None) -> str:
    grp = f"\n        group: {group}" if group else ""
    return f"""
      - id: {rid}
        event_type: {COURSE_PASSING}{grp}
        rules:
          - {{key_path: is_passing, operator: "=", value: "true"}}
          - {{key_path: course.course_key, operator: "=", value: "{course}"}}"""


CONFIG = f"""
organizations:
  - uuid: {ORG}
    api_key_env: CREDLY_TOKEN_ACME
templates:
  - uuid: {DEMO_T}
    active: true
    requirements:{_course_req("demo", DEMO_COURSE)}
    penalties:
      - id: demo-failed
        event_type: {COURSE_PASSING}
        requirements: [demo]
        rules:
          - {{key_path: is_passing, operator: "=", value: "false"}}
          - {{key_path: course.course_key, operator: "=", value: "{DEMO_COURSE}"}}
  - uuid: {OTHER_T}
    active: true
    requirements:{_course_req("passed", OTHER_COURSE, "A")}
      - id: certificate
        event_type: {CERT_CREATED}
        group: B
        rules:
          - {{key_path: course.course_key, operator: "=", value: "{OTHER_COURSE}"}}
  - uuid: {LATER_T}
    active: false
    requirements:{_course_req("later", LATER_COURSE)}
  - uuid: {WH_T}
    active: true
    requirements:{_course_req("wh", "course-v1:OpenedX+Webhook+1")}
  - uuid: {GONE_T}
    active: true
    requirements:{_course_req("gone", "course-v1:OpenedX+Gone+1")}
"""

# every response body and header block of this module, for the token check at the end
SEEN: list[str] = []


def http(method: str, url: str, *, signed_in: bool = True, **kw: Any) -> httpx.Response:
    """A request with the viewer token, unless it names its own Authorization or ``signed_in=False``."""
    headers = {**(VIEWER_AUTH if signed_in else {}), **kw.pop("headers", {})}
    response = httpx.request(method, url, timeout=30, headers=headers, **kw)
    SEEN.append(response.text)
    SEEN.append(str(dict(response.headers)))
    return response


def get_json(url: str) -> Any:
    r = http("GET", url)
    assert r.status_code == 200, (url, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def admin(worker: WorkerProcess, path: str, token: str | None = ADMIN, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    return http("POST", f"{worker.url}{path}", signed_in=False, headers=headers, **kw)


def cluster_map(worker: WorkerProcess) -> dict[str, list[int]]:
    return {m["url"]: m["partitions"] for m in get_json(f"{worker.url}/api/dashboard")["cluster"]}


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    templates = [(DEMO_T, "Demo"), (OTHER_T, "Other"), (LATER_T, "Later"), (EMPTY_T, "Empty"),
                 (WH_T, "Webhook"), (GONE_T, "Gone")]
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("web"), templates, "web")
    s.configure(CONFIG)
    # an organization with an inline token (never shown); published as `org add --api-key` would
    publish(s.settings, [Organization(uuid=INLINE_ORG, name="Inline Org", api_key=INLINE_TOKEN)])  # type: ignore[arg-type]  # a SecretStr by pydantic
    # a template whose rule names a key path the schema does not have (as after a catalog change)
    stale = Requirement(id="stale", event_type=COURSE_PASSING,
                        rules=[DataRule(key_path="course.no_such_field", operator="eq", value="x")])
    publish(s.settings, [Template(uuid=PROB_T, organization=ORG, name="Stale", requirements=[stale])])
    extra = {"BADGES_CREDLY_MAX_ATTEMPTS": "3"}
    s.start_worker("admin-worker", BADGES_ADMIN_TOKEN=ADMIN, **extra)  # type: ignore[arg-type]  # the variables never name name or wait
    s.start_worker("plain-worker", **extra)  # type: ignore[arg-type]  # the variables never name name or wait
    p = s.partitions

    def settled() -> bool:
        maps = [cluster_map(w) for w in s.workers]
        first = maps[0]
        parts = sorted(x for v in first.values() for x in v)
        return (all(m == first for m in maps) and len(first) == 2 and parts == list(range(p))
                and all(first.values()) and all(w.health()["ready"] for w in s.workers))

    wait_until(settled, timeout=90, interval=0.3, what="two workers sharing the partitions")
    yield s
    s.stop()
    s.emulator.stop_thread()


@pytest.fixture(scope="module")
def w1(stack: Stack) -> WorkerProcess:
    return stack.workers[0]


@pytest.fixture(scope="module")
def w2(stack: Stack) -> WorkerProcess:
    return stack.workers[1]


def owner_url(worker: WorkerProcess, learner_id: int, partitions: int) -> str:
    part = learner_partition(learner_id, partitions)
    return next(url for url, parts in cluster_map(worker).items() if part in parts)


def wait_learner(worker: WorkerProcess, learner_id: int, predicate: Any, what: str = "") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        r = http("GET", f"{worker.url}/api/learners/{learner_id}")
        if r.status_code != 200:
            return None
        data = r.json()
        return data if predicate(data) else None

    return wait_until(check, timeout=60, interval=0.2, what=what or f"learner {learner_id}")


def template_of(data: dict[str, Any], uuid: str) -> dict[str, Any]:
    return next(t for t in data["templates"] if t["template"] == uuid)


# --- pages ---------------------------------------------------------------------------------------


PAGES = [
    ("/", "/api/dashboard", ["Dashboard", "dead letters", "Consumers of this worker"]),
    ("/organizations", "/api/organizations", ["ACME Learning", "CREDLY_TOKEN_ACME", "Inline Org"]),
    ("/templates", "/api/templates", ["Demo", "Other", "Later"]),
    (f"/templates/{OTHER_T}", f"/api/templates/{OTHER_T}", ["Group A", "Group B", "certificate"]),
    ("/badges", "/api/badges", ["Badges", "Gathered from every worker"]),
    ("/learners", None, ["Find a learner"]),
]


@pytest.mark.parametrize(("page", "api", "texts"), PAGES)
def test_every_page_renders_html_and_json(stack: Stack, w1: WorkerProcess, page: str, api: str | None,
                                          texts: list[str]) -> None:
    r = http("GET", f"{w1.url}{page}", headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    for text in texts:
        assert text in r.text, (page, text)
    if api:
        assert isinstance(get_json(f"{w1.url}{api}"), dict)
    css = http("GET", f"{w1.url}/static/style.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_json_of_templates_and_organizations(w1: WorkerProcess) -> None:
    orgs = {o["uuid"]: o for o in get_json(f"{w1.url}/api/organizations")["organizations"]}
    assert orgs[ORG]["name"] == "ACME Learning"
    assert orgs[ORG]["token"] == {"kind": "environment", "variable": "CREDLY_TOKEN_ACME", "set_on_this_worker": True}
    assert orgs[INLINE_ORG]["token"]["kind"] == "inline"

    listing = {t["uuid"]: t for t in get_json(f"{w1.url}/api/templates")["templates"]}
    assert listing[DEMO_T]["processing"] and listing[DEMO_T]["credly_state"] == "active"
    assert not listing[LATER_T]["processing"] and listing[EMPTY_T]["requirements"] == 0

    detail = get_json(f"{w1.url}/api/templates/{DEMO_T}")
    assert [r["id"] for r in detail["requirement_list"]] == ["demo"]
    assert detail["requirement_list"][0]["rules"][1] == {"key_path": "course.course_key", "operator": "=", "value": DEMO_COURSE}
    assert detail["penalty_list"] == [{"id": "demo-failed", "event_type": COURSE_PASSING, "description": "",
                                       "targets": ["demo"], "rules": detail["penalty_list"][0]["rules"]}]
    other = get_json(f"{w1.url}/api/templates/{OTHER_T}")
    assert {g["name"]: g["requirements"] for g in other["group_list"]} == {"A": ["passed"], "B": ["certificate"]}
    blocker = get_json(f"{w1.url}/api/templates/{EMPTY_T}")["activation_blocker"]
    assert blocker.endswith("has no requirement; add one with `badges config apply` first")

    stale = get_json(f"{w1.url}/api/templates/{PROB_T}")
    assert stale["problems"] == 1 and "unknown key path 'course.no_such_field'" in stale["problem_list"][0]
    page = http("GET", f"{w1.url}/templates/{PROB_T}", headers={"Accept": "text/html"})
    assert "Problems" in page.text and "course.no_such_field" in page.text

    dash = get_json(f"{w1.url}/api/dashboard")
    assert dash["worker"]["app_id"] == stack_app_id(w1)
    assert dash["configuration"]["problems"] == 1
    assert dash["configuration"]["active_templates"] == 4  # demo, other, webhook, gone
    agents = dash["consumers"]["agents"]["partitions"]
    assert any(p["role"] == "progress agent" for p in agents)
    assert "tansu" in dash["consumers"]["note"]
    assert dash["consumers"]["redis"] is None  # Redis Streams ingestion is off here


def stack_app_id(worker: WorkerProcess) -> str:
    return worker.env["BADGES_APP_ID"]


def test_learner_progress_is_explained_group_by_group(stack: Stack, w1: WorkerProcess) -> None:
    lid = 2001
    msg = stack.event(COURSE_PASSING, lid, {"is_passing": True, "course.course_key": OTHER_COURSE},
                      name="Grace Hopper", username="grace")
    stack.send([msg])
    data = wait_learner(w1, lid, lambda d: template_of(d, OTHER_T)["groups"][0]["fulfilled"])
    assert data["learner"] == {"id": lid, "username": "grace", "email": f"learner{lid}@example.com", "name": "Grace Hopper",
                               "forgotten": False}
    other = template_of(data, OTHER_T)
    group_a, group_b = other["groups"]
    assert (group_a["name"], group_a["fulfilled"], group_b["name"], group_b["fulfilled"]) == ("A", True, "B", False)
    by = group_a["requirements"][0]["fulfilled_by"]
    headers = dict(msg.headers)
    assert by["event_id"] == headers["ce_id"].decode()
    assert by["event_type"] == COURSE_PASSING
    assert by["time"] == headers["ce_time"].decode()
    assert by["origin"].startswith(f"{stack.input_topic}/")
    assert group_b["requirements"][0]["fulfilled_by"] is None
    assert other["badge"] is None and not other["complete"]
    # untouched active templates are listed as missing everything
    assert not template_of(data, DEMO_T)["groups"][0]["fulfilled"]

    page = http("GET", f"{w1.url}/learners/{lid}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Grace Hopper" in page.text
    assert re.search(r'class="group fulfilled".*?Group A', page.text, re.S)
    assert re.search(r'class="group missing".*?Group B', page.text, re.S)


def test_award_then_revoke_shows_decision_and_credly_record(stack: Stack, w1: WorkerProcess, w2: WorkerProcess) -> None:
    lid, email = 2002, "ada2002@example.com"
    stack.send([stack.event(COURSE_PASSING, lid, {"is_passing": True, "course.course_key": DEMO_COURSE}, email=email)])
    badge = stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))
    credly_id = next(b["id"] for b in badge if b["recipient_email"] == email)
    data = wait_learner(w2, lid, lambda d: (template_of(d, DEMO_T)["issuance"] or {}).get("status") == "issued")
    demo = template_of(data, DEMO_T)
    assert demo["badge"]["status"] == "awarded"
    assert demo["issuance"]["credly_id"] == credly_id
    assert demo["issuance"]["credly_state"] == "pending" and demo["issuance"]["attempts"] == 1

    penalty = stack.event(COURSE_PASSING, lid, {"is_passing": False, "course.course_key": DEMO_COURSE}, email=email)
    stack.send([penalty])
    data = wait_learner(w1, lid, lambda d: (template_of(d, DEMO_T)["issuance"] or {}).get("status") == "revoked")
    demo = template_of(data, DEMO_T)
    assert demo["badge"]["status"] == "revoked"
    assert demo["badge"]["revoked_by"]["event_id"] == dict(penalty.headers)["ce_id"].decode()
    assert demo["groups"][0]["requirements"][0]["last_reset_us"]
    assert not demo["groups"][0]["fulfilled"]
    page = http("GET", f"{w1.url}/learners/{lid}", headers={"Accept": "text/html"})
    assert "badge revoked" in page.text and "Revoked by" in page.text

    for worker in (w1, w2):
        rows = get_json(f"{worker.url}/api/badges")["badges"]
        mine = [r for r in rows if r["learner"]["id"] == lid]
        assert [(r["template"]["uuid"], r["status"], r["credly_id"]) for r in mine] == [(DEMO_T, "revoked", credly_id)]


# --- routing -------------------------------------------------------------------------------------


def test_any_worker_answers_for_any_learner(stack: Stack, w1: WorkerProcess, w2: WorkerProcess) -> None:
    learners = list(range(3001, 3013))
    stack.send([stack.event(COURSE_PASSING, lid, {"is_passing": True, "course.course_key": OTHER_COURSE})
                for lid in learners])
    owners = {lid: owner_url(w1, lid, stack.partitions) for lid in learners}
    assert {w1.url, w2.url} == set(owners.values()), "both workers own some of these learners"
    for lid in learners:
        wait_learner(w1, lid, lambda d: template_of(d, OTHER_T)["groups"][0]["fulfilled"])
    for lid, owner in owners.items():
        other = w2 if owner == w1.url else w1
        direct = http("GET", f"{owner}/api/learners/{lid}")
        routed = http("GET", f"{other.url}/api/learners/{lid}")
        assert direct.status_code == routed.status_code == 200
        assert routed.json() == direct.json()
        assert routed.json()["served_by"] == owner
        assert routed.headers["x-badges-served-by"] == owner
        assert routed.headers["x-badges-routed-via"] == other.url
        assert "x-badges-routed-via" not in direct.headers
        # the HTML page is routed the same way
        page = http("GET", f"{other.url}/learners/{lid}", headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.headers["x-badges-served-by"] == owner
        assert f"answered by <code>{owner}</code>" in page.text
    # a request that was already forwarded is answered where it lands (no forwarding loops)
    lid, owner = next(iter(owners.items()))
    other = w2 if owner == w1.url else w1
    hop = http("GET", f"{other.url}/api/learners/{lid}", headers={"X-Badges-Forwarded-By": owner})
    assert hop.headers["x-badges-served-by"] == other.url and "x-badges-routed-via" not in hop.headers
    # unknown learners: the owner's 404, whoever is asked
    assert http("GET", f"{w1.url}/api/learners/987654321").status_code == 404
    assert http("GET", f"{w2.url}/api/learners/987654321").status_code == 404


def test_badge_list_gathers_every_worker(stack: Stack, w1: WorkerProcess, w2: WorkerProcess) -> None:
    emails = [f"list{n}@example.com" for n in range(4)]
    stack.send([stack.event(COURSE_PASSING, 4001 + n, {"is_passing": True, "course.course_key": DEMO_COURSE}, email=e)
                for n, e in enumerate(emails)])
    stack.wait_badges(lambda b: sum(x["recipient_email"] in emails for x in b) == 4)

    def listed(worker: WorkerProcess) -> dict[str, Any] | None:
        data = get_json(f"{worker.url}/api/badges?status=issued&limit=1000")
        mine = {r["learner"]["id"] for r in data["badges"] if r["learner"]["email"] in emails}
        return data if mine == {4001, 4002, 4003, 4004} else None

    one = wait_until(lambda: listed(w1), what="the 4 badges in w1's list")
    two = wait_until(lambda: listed(w2), what="the 4 badges in w2's list")
    assert one["complete"] and two["complete"] and one["missing_partitions"] == []
    assert sorted(w["url"] for w in one["workers"]) == sorted([w1.url, w2.url])
    assert all(w["ok"] for w in one["workers"])
    assert {r["worker"] for r in one["badges"] if r["learner"]["email"] in emails} <= {w1.url, w2.url}
    key = lambda d: sorted((r["learner"]["id"], r["template"]["uuid"], r["credly_id"]) for r in d["badges"])  # noqa: E731 - a one-line sort key
    assert key(one) == key(two) and one["counts"] == two["counts"]
    assert all(r["status"] == "issued" for r in one["badges"])
    # cursor pages of 2 across both workers: every badge once, in the order of the whole list
    pages, after = [], None
    while True:
        page = get_json(f"{w2.url}/api/badges?limit=2" + (f"&after={after}" if after else ""))
        assert page["shown"] <= 2 and page["complete"]
        pages += [(r["learner"]["id"], r["template"]["uuid"]) for r in page["badges"]]
        after = page["next"]
        if after is None:
            break
    whole = get_json(f"{w2.url}/api/badges?limit=1000")
    assert pages == [(r["learner"]["id"], r["template"]["uuid"]) for r in whole["badges"]]
    assert len(pages) == whole["matching"] == sum(whole["counts"].values())
    html = http("GET", f"{w1.url}/badges?limit=2", headers={"Accept": "text/html"}).text
    assert 'rel="next"' in html


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/learners/abc", 400),
    ("GET", "/api/learners/007", 400),
    ("GET", "/api/learners/-1", 400),
    ("GET", "/api/learners/123456789", 404),
    ("GET", "/api/templates/not-a-uuid", 400),
    ("GET", "/api/templates/7d4f6a52-0000-4000-8000-00000000ffff", 404),
    ("GET", "/api/badges?status=bogus", 400),
    ("GET", "/api/badges?limit=0", 400),
    ("GET", "/api/nothing-here", 404),
    ("GET", "/table/config/", 404),  # Faust's table blueprint would serve raw records: off
    ("GET", f"/api/templates/{DEMO_T}/activate", 405),
    ("GET", "/credly/webhook", 405),
    ("PUT", "/api/badges/retry-failed", 405),
    ("DELETE", "/api/dashboard", 405),
])
def test_errors_are_json_with_the_right_status(w1: WorkerProcess, method: str, path: str, status: int) -> None:
    r = http(method, f"{w1.url}{path}")
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["error"], str) and r.json()["error"]
    assert "Traceback" not in r.text


def test_a_browser_gets_an_html_error_page(w1: WorkerProcess) -> None:
    r = http("GET", f"{w1.url}/templates/not-a-uuid", headers={"Accept": "text/html"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert "template uuid must be a UUID" in r.text
    r = http("GET", f"{w1.url}/learners?id=42x", headers={"Accept": "text/html"})
    assert r.status_code == 400
    r = http("GET", f"{w1.url}/learners?id=2001", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/learners/2001"


# --- admin API -----------------------------------------------------------------------------------


def test_admin_actions_need_the_bearer_token(w1: WorkerProcess, w2: WorkerProcess) -> None:
    path = f"/api/templates/{LATER_T}/activate"
    missing = admin(w1, path, token=None)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert admin(w1, path, token="wrong-token").status_code == 401
    basic = http("POST", f"{w1.url}{path}", headers={"Authorization": f"Basic {ADMIN}"})
    assert basic.status_code == 401
    read_only = admin(w1, path, token=VIEWER_TOKEN)
    assert read_only.status_code == 403 and "read only" in read_only.json()["error"]
    assert admin(w2, path).status_code == 401  # the second worker has no BADGES_ADMIN_TOKEN ...
    refused = admin(w2, path, token=VIEWER_TOKEN)  # ... so even a signed-in caller is refused
    assert refused.status_code == 403 and "BADGES_ADMIN_TOKEN is not set" in refused.json()["error"]
    for action in ("/api/templates/sync", "/api/badges/retry-failed", f"/api/templates/{LATER_T}/deactivate"):
        assert admin(w2, action, token=VIEWER_TOKEN).status_code == 403
        assert admin(w1, action, token=None).status_code == 401
    # nothing changed
    assert not get_json(f"{w1.url}/api/templates/{LATER_T}")["processing"]


def test_admin_input_is_validated(w1: WorkerProcess) -> None:
    assert admin(w1, "/api/templates/not-a-uuid/activate").status_code == 400
    assert admin(w1, "/api/templates/7d4f6a52-0000-4000-8000-00000000ffff/activate").status_code == 404
    no_req = admin(w1, f"/api/templates/{EMPTY_T}/activate")
    assert no_req.status_code == 422 and "no requirement" in no_req.json()["error"]
    assert admin(w1, "/api/templates/sync", content=b"{not json").status_code == 400
    assert admin(w1, "/api/templates/sync", json=[1, 2]).status_code == 400
    assert admin(w1, "/api/templates/sync", json={"organization": 5}).status_code == 422
    assert admin(w1, "/api/templates/sync", json={"organisation": ORG}).status_code == 422
    assert admin(w1, "/api/templates/sync", json={"organization": "nope"}).status_code == 400
    unknown = admin(w1, "/api/templates/sync", json={"organization": "0b8a3f0e-0000-4000-8000-00000000dead"})
    assert unknown.status_code == 404
    big = admin(w1, "/api/badges/retry-failed", content=b"{" + b" " * 10_000 + b"}",
                headers={"Content-Type": "application/json"})
    assert big.status_code == 413


def test_activate_over_http_starts_processing_the_template(stack: Stack, w1: WorkerProcess, w2: WorkerProcess) -> None:
    lid, email = 5001, "later@example.com"
    event = {"is_passing": True, "course.course_key": LATER_COURSE}
    stack.send([stack.event(COURSE_PASSING, lid, event, email=email)])  # inactive: no progress
    answer = admin(w1, f"/api/templates/{LATER_T}/activate")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"template": LATER_T, "active": True, "applied": True}
    wait_until(lambda: get_json(f"{w2.url}/api/templates/{LATER_T}")["processing"], what="w2 sees the activation")
    stack.send([stack.event(COURSE_PASSING, lid, event, email=email)])
    badges = stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))
    assert [b["badge_template"]["id"] for b in badges if b["recipient_email"] == email] == [LATER_T]

    off = admin(w1, f"/api/templates/{LATER_T}/deactivate")
    assert off.status_code == 200 and off.json()["active"] is False
    wait_until(lambda: not get_json(f"{w2.url}/api/templates/{LATER_T}")["processing"], what="w2 sees the deactivation")
    assert "active: false" in export_block(stack, LATER_T)


def test_sync_over_http_pulls_new_templates(stack: Stack, w1: WorkerProcess) -> None:
    created = http("POST", f"{stack.emulator.url}/_emulator/templates",
                   json={"uuid": SYNC_T, "org": ORG, "name": "Synced Later", "state": "active"})
    assert created.status_code == 200
    answer = admin(w1, "/api/templates/sync", json={"organization": ORG})
    assert answer.status_code == 200, answer.text
    result = answer.json()["organizations"][0]
    assert result["organization"] == ORG and result["new"] >= 1 and result["pulled"] >= 7
    tpl = get_json(f"{w1.url}/api/templates/{SYNC_T}")
    assert (tpl["name"], tpl["active"], tpl["credly_state"]) == ("Synced Later", False, "active")
    again = admin(w1, "/api/templates/sync")  # all organizations; the inline one is unknown to Credly
    assert again.status_code == 502 and "Credly" in again.json()["error"]


def test_retry_failed_redrives_a_badge_that_failed(stack: Stack, w1: WorkerProcess, w2: WorkerProcess) -> None:
    lid, email = 6001, "retry@example.com"
    stack.credly_fault(mode="status", status=500, times=3, method="POST", path="/badges$")
    stack.send([stack.event(COURSE_PASSING, lid, {"is_passing": True, "course.course_key": DEMO_COURSE}, email=email)])

    def failed() -> dict[str, Any] | None:
        rows = get_json(f"{w2.url}/api/badges?status=failed")["badges"]
        return next((r for r in rows if r["learner"]["id"] == lid), None)

    row = wait_until(failed, timeout=60, what="the badge recorded as failed")
    assert row["failed"] and row["attempts"] == 3 and "500" in row["last_error"]
    assert not [b for b in stack.credly_badges() if b["recipient_email"] == email]
    page = http("GET", f"{w1.url}/badges?status=failed", headers={"Accept": "text/html"})
    assert re.search(r'<tr class="row-bad">.*?retry@example.com', page.text, re.S)

    answer = admin(w1, "/api/badges/retry-failed")
    assert answer.status_code == 202 and answer.json() == {"requested_partitions": stack.partitions}
    stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b), what="the re-driven badge")
    data = wait_learner(w1, lid, lambda d: (template_of(d, DEMO_T)["issuance"] or {}).get("status") == "issued")
    assert template_of(data, DEMO_T)["issuance"]["last_error"] is None


# --- Credly webhook ------------------------------------------------------------------------------


def credly_event(stack: Stack, event_type: str, template: str | None, deliver_to: str | None = None,
                 org: str = ORG, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"organization_id": org, "event_type": event_type}
    if template:
        body["badge_template_id"] = template
    if changes:
        body["changes"] = changes
    if deliver_to:
        body["deliver_to"] = deliver_to
    r = http("POST", f"{stack.emulator.url}/_emulator/events", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def export_block(stack: Stack, uuid: str) -> str:
    """The lines of `badges config export` about one template."""
    text = stack.cli("config", "export").stdout
    start = text.index(f"- uuid: {uuid}")
    nxt = text.find("\n  - uuid:", start + 1)
    return text[start:nxt if nxt != -1 else None]


def test_webhook_created_adds_the_template_inactive(stack: Stack, w1: WorkerProcess, w2: WorkerProcess) -> None:
    note = credly_event(stack, "badge_template.created", NEW_T, name="Fresh From Credly", state="active")["notification"]
    r = http("POST", f"{w2.url}/credly/webhook", json=note)  # any worker takes webhooks
    assert r.status_code == 204, r.text
    tpl = get_json(f"{w1.url}/api/templates/{NEW_T}")
    assert (tpl["name"], tpl["active"], tpl["credly_state"]) == ("Fresh From Credly", False, "active")
    # a second delivery of the same notification changes nothing and still answers 204
    assert http("POST", f"{w1.url}/credly/webhook", json=note).status_code == 204


def test_webhook_archived_template_is_deactivated(stack: Stack, w1: WorkerProcess) -> None:
    assert get_json(f"{w1.url}/api/templates/{WH_T}")["processing"]
    result = credly_event(stack, "badge_template.changed", WH_T, deliver_to=f"{w1.url}/credly/webhook", state="archived")
    assert result["delivery_status"] == 204
    tpl = get_json(f"{w1.url}/api/templates/{WH_T}")
    assert (tpl["active"], tpl["processing"], tpl["credly_state"]) == (False, False, "archived")
    block = export_block(stack, WH_T)
    assert "active: false" in block and "Credly state: archived" in block


def test_webhook_deleted_template_is_deactivated(stack: Stack, w1: WorkerProcess) -> None:
    result = credly_event(stack, "badge_template.deleted", GONE_T, deliver_to=f"{w1.url}/credly/webhook")
    assert result["delivery_status"] == 204
    tpl = get_json(f"{w1.url}/api/templates/{GONE_T}")
    assert (tpl["active"], tpl["credly_state"]) == (False, "deleted")
    assert "active: false" in export_block(stack, GONE_T)


def test_webhook_trusts_only_what_credly_answers(stack: Stack, w1: WorkerProcess) -> None:
    # the body claims a deletion; Credly's event says "changed" with the template still active
    note = credly_event(stack, "badge_template.changed", DEMO_T)["notification"]
    forged = {**note, "event_type": "badge_template.deleted", "badge_template": {"id": DEMO_T, "state": "deleted"}}
    assert http("POST", f"{w1.url}/credly/webhook", json=forged).status_code == 204
    assert get_json(f"{w1.url}/api/templates/{DEMO_T}")["processing"]
    # an event id Credly does not know
    bogus = http("POST", f"{w1.url}/credly/webhook", json={"id": "0e8d0c7b-1111-4222-8333-944455556666", "organization_id": ORG})
    assert bogus.status_code == 502 and "Credly" in bogus.json()["error"]


def test_webhook_answers(stack: Stack, w1: WorkerProcess) -> None:
    url = f"{w1.url}/credly/webhook"
    other = credly_event(stack, "badge.state.changed", None)["notification"]
    assert http("POST", url, json=other).status_code == 204  # not a template event: logged, ignored
    unknown = http("POST", url, json={"id": other["id"], "organization_id": "0b8a3f0e-0000-4000-8000-00000000beef"})
    assert unknown.status_code == 404 and "not configured" in unknown.json()["error"]
    assert http("POST", url, content=b"{oops", headers={"Content-Type": "application/json"}).status_code == 400
    assert http("POST", url, json={"organization_id": ORG}).status_code == 400
    assert http("POST", url, json={"id": 5, "organization_id": ORG}).status_code == 400
    assert http("POST", url, json={"id": "x/../y", "organization_id": ORG}).status_code == 400
    assert http("POST", url, json={"id": other["id"], "organization_id": "not-a-uuid"}).status_code == 400
    assert http("POST", url, json=["list"]).status_code == 400
    assert http("POST", url, content=b" " * 70_000, headers={"Content-Type": "application/json"}).status_code == 413
    # Credly down: 502 with a message, and no token anywhere in it
    stack.credly_fault(mode="status", status=503, times=3, method="GET", path="/events/")
    down = http("POST", url, json=credly_event(stack, "badge_template.changed", DEMO_T)["notification"])
    assert down.status_code == 502 and "503" in down.json()["error"]
    # Credly rejects the organization's token: still a 502, never a crash
    note = credly_event(stack, "badge_template.changed", None)["notification"]
    inline = http("POST", url, json={"id": note["id"], "organization_id": INLINE_ORG})
    assert inline.status_code == 502


# --- metrics and secrets -------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_what_happened(stack: Stack, w1: WorkerProcess, w2: WorkerProcess) -> None:
    stack.send([(b"k", b"\x01not-framed", [("ce_type", COURSE_PASSING.encode())])])
    email = "metrics@example.com"
    stack.send([stack.event(COURSE_PASSING, 7001, {"is_passing": True, "course.course_key": DEMO_COURSE}, email=email)])
    stack.wait_badges(lambda b: any(x["recipient_email"] == email for x in b))

    def scraped() -> str:
        return "\n".join(http("GET", f"{w.url}/metrics").text for w in (w1, w2))

    def dead_letter_seen() -> bool:
        return metric(scraped(), "badges_dead_letters_total", reason="bad_magic_byte") >= 1

    wait_until(dead_letter_seen, what="the dead letter counted")
    text = scraped()
    assert metric(text, "badges_events_consumed_total", event_type=COURSE_PASSING) >= 1
    assert metric(text, "badges_requirements_matched_total") >= 1
    assert metric(text, "badges_penalties_matched_total") >= 1
    assert metric(text, "badges_decisions_total", action="award") >= 1
    assert metric(text, "badges_decisions_handed_off_total", outcome="queued") >= 1  # the sink's in-process path
    assert metric(text, "badges_awards_total", outcome="issued") >= 1
    assert metric(text, "badges_revocations_total", outcome="revoked") >= 1
    assert metric(text, "badges_credly_calls_total", endpoint="issue_badge", outcome="ok") >= 1
    assert metric(text, "badges_credly_calls_total", endpoint="issue_badge", outcome="server_error") >= 3
    assert metric(text, "badges_credly_calls_total", endpoint="revoke_badge", outcome="ok") >= 1
    assert metric(text, "badges_credly_calls_total", endpoint="get_event", outcome="ok") >= 1
    assert metric(text, "badges_credly_call_seconds_count", endpoint="issue_badge") >= 1
    assert metric(text, "badges_event_latency_seconds_count") >= 1
    assert metric(text, "badges_webhook_events_total", event_type="badge_template.changed", outcome="applied") >= 1
    assert metric(text, "badges_webhook_events_total", outcome="unknown_organization") >= 1
    assert metric(text, "badges_build_info", version=__version__) == 2  # one per worker
    assert metric(text, "badges_badges", status="issued") >= 1

    def lag_partitions() -> list[str] | None:
        found = sorted(re.findall(rf'^badges_ingest_lag{{partition="(\d+)",topic="{stack.input_topic}"}} \d', scraped(), re.M))
        return found if len(found) == stack.partitions else None

    # every input partition once, on the worker whose ingestion consumer has it
    assert wait_until(lag_partitions, what="a lag figure per input partition") == [str(p) for p in range(stack.partitions)]

    # the dashboard counts dead letters from the topic itself: the same on both workers
    def by_reason(w: WorkerProcess) -> dict[str, int]:
        return get_json(f"{w.url}/api/dashboard")["dead_letters"]["by_reason"]

    wait_until(lambda: by_reason(w1).get("bad_magic_byte", 0) >= 1 and by_reason(w1) == by_reason(w2),
               what="dead letters by reason on both dashboards")


# --- who may see what (SPEC §9) ------------------------------------------------------------------

PII_LEARNER = 2950
PATH_VALUES = {"uuid": DEMO_T, "learner_id": str(PII_LEARNER), "learner": str(PII_LEARNER), "name": "progress",
               "key": str(PII_LEARNER)}
# SPEC §9's open paths, and the sign-in pages themselves
OPEN_ROUTES = {"/healthz", "/livez", "/metrics", "/credly/webhook", "/static", "/login", "/logout",
               "/login/oauth", "/login/oauth/complete"}


def router_routes(stack: Stack) -> list[tuple[str, str]]:
    """Every (method, path) the workers serve, read from the router of an app built exactly as
    ``badges worker`` builds it (Faust blueprints included), with path parameters filled in."""
    from badges.workers.app import build_app

    app = build_app(stack.settings)
    app.web.blueprints.apply(app.web)
    routes = set()
    for route in app.web.web_app.router.routes():  # type: ignore[attr-defined]  # the aiohttp driver's
        path = route.resource.canonical if route.resource is not None else ""
        if path == "/static":
            path = "/static/style.css"
        routes.add((route.method, re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)))
    return sorted(routes)


def test_no_route_shows_learner_data_without_authentication(stack: Stack, w1: WorkerProcess, w2: WorkerProcess) -> None:
    pii = ["grace.hopper@example.org", "ghopper2950", "Grace Brewster Hopper"]
    stack.send([stack.event(COURSE_PASSING, PII_LEARNER, {"is_passing": True, "course.course_key": OTHER_COURSE},
                            email=pii[0], username=pii[1], name=pii[2])])
    wait_learner(w1, PII_LEARNER, lambda d: d["learner"]["email"] == pii[0])
    routes = router_routes(stack)
    assert ("GET", f"/api/learners/{PII_LEARNER}") in routes and ("GET", "/router/") in routes
    anonymous = [{}, {"Authorization": "Bearer not-a-token"}, {"Cookie": "badges_session=gAAAAABforged"}]
    for worker in (w1, w2):
        for method, path in routes:
            for headers in anonymous:
                for accept in ("application/json", "text/html"):
                    r = http(method, f"{worker.url}{path}", signed_in=False, headers={**headers, "Accept": accept})
                    leaked = [value for value in pii if value in r.text]
                    assert not leaked, (method, path, headers, r.status_code, leaked)
                    is_open = path.startswith("/static/") or path in OPEN_ROUTES
                    if not is_open:
                        assert r.status_code == 401, (method, path, headers, r.status_code)
                        wants_html = accept == "text/html" and method in ("GET", "HEAD") and not path.startswith("/api/")
                        kind = "text/html" if wants_html else "application/json"
                        assert r.headers["content-type"].startswith(kind), (method, path, headers)
                        if wants_html and method == "GET" and "Authorization" not in headers:
                            assert "Sign in" in r.text  # the login page (a wrong token gets its error)
                    assert r.headers["x-frame-options"] == "DENY"
                    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_tokens_never_appear_in_any_response(stack: Stack, w1: WorkerProcess, w2: WorkerProcess) -> None:
    for worker in (w1, w2):
        for page, api, _ in PAGES:
            http("GET", f"{worker.url}{page}", headers={"Accept": "text/html"})
            if api:
                http("GET", f"{worker.url}{api}")
        for path in ("/api/learners/2002", "/learners/2002", "/badges?status=failed", "/metrics", "/healthz",
                     "/router/", f"/api/templates/{GONE_T}", "/table/config/org%2F" + INLINE_ORG + "/"):
            http("GET", f"{worker.url}{path}", headers={"Accept": "text/html"})
    assert len(SEEN) > 50
    for secret in (TOKEN, ADMIN, INLINE_TOKEN, VIEWER_TOKEN):
        leaks = [text[:200] for text in SEEN if secret in text]
        assert not leaks, f"a token appeared in a response: {leaks[0]!r}"


def test_a_dead_owner_is_a_502_then_the_survivor_takes_over(stack: Stack, w1: WorkerProcess, w2: WorkerProcess) -> None:
    """Runs last: it kills the second worker."""
    lid = next(n for n in range(8001, 8100) if owner_url(w1, n, stack.partitions) == w2.url)
    stack.send([stack.event(COURSE_PASSING, lid, {"is_passing": True, "course.course_key": OTHER_COURSE})])
    wait_learner(w1, lid, lambda d: template_of(d, OTHER_T)["groups"][0]["fulfilled"])
    w2.kill9()
    down = http("GET", f"{w1.url}/api/learners/{lid}")  # before the group notices (session timeout)
    assert down.status_code == 502 and w2.url in down.json()["error"]
    badges = get_json(f"{w1.url}/api/badges")
    assert not badges["complete"] and badges["missing_partitions"]
    assert [w["ok"] for w in badges["workers"] if w["url"] == w2.url] == [False]
    # after the rebalance the survivor owns (and has recovered) every partition
    data = wait_learner(w1, lid, lambda d: template_of(d, OTHER_T)["groups"][0]["fulfilled"], what="failover")
    assert data["served_by"] == w1.url
