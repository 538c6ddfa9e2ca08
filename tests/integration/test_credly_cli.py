"""`badges org add` and `badges templates sync` against the Credly emulator."""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest
import yaml

from tests.support.stack import ORG, TOKEN, Stack, make_stack

T1 = "7d4f6a52-0000-4000-8000-000000000101"
T2 = "7d4f6a52-0000-4000-8000-000000000102"
T3 = "7d4f6a52-0000-4000-8000-000000000103"


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory) -> Iterator[Stack]:
    s = make_stack(broker.bootstrap, tmp_path_factory.mktemp("credlycli"), [(T1, "One"), (T2, "Two")], "credlycli")
    yield s
    s.emulator.stop_thread()


def exported(stack: Stack) -> dict:
    return yaml.safe_load(stack.cli("config", "export").stdout) or {}


def test_a_rejected_token_stores_nothing_and_says_why(stack: Stack) -> None:
    proc = stack.cli("org", "add", "--uuid", ORG, "--api-key-env", "WRONG_TOKEN", check=False, WRONG_TOKEN="not-the-token")
    assert proc.returncode != 0
    assert f"Credly rejected the token for organization {ORG} (401)" in proc.stderr
    assert "not-the-token" not in proc.stdout + proc.stderr
    assert not exported(stack).get("organizations")
    unset = stack.cli("org", "add", "--uuid", ORG, "--api-key-env", "NOT_SET_ANYWHERE", check=False)
    assert unset.returncode != 0 and "NOT_SET_ANYWHERE is not set" in unset.stderr


def test_org_add_stores_the_name_and_an_inline_key_is_never_printed(stack: Stack) -> None:
    out = stack.cli("org", "add", "--uuid", ORG, "--api-key-env", "CREDLY_TOKEN_ACME").stdout
    assert "ACME Learning" in out
    inline = stack.cli("org", "add", "--uuid", ORG, "--api-key", TOKEN)
    assert "warning" in inline.stderr and TOKEN not in inline.stdout + inline.stderr
    export = stack.cli("config", "export").stdout
    assert TOKEN not in export
    stack.cli("org", "add", "--uuid", ORG, "--api-key-env", "CREDLY_TOKEN_ACME")  # back to the variable


def test_sync_pulls_active_templates_new_ones_inactive_and_never_flips_is_active(stack: Stack) -> None:
    out = stack.cli("templates", "sync").stdout
    assert "pulled 2 active template(s), 2 new" in out
    templates = {t["uuid"]: t for t in exported(stack)["templates"]}
    assert set(templates) == {T1, T2} and not any(t["active"] for t in templates.values())
    # give T1 a requirement and activate it; then Credly renames it and adds an archived T3
    stack.cli("config", "apply", str(_write(stack, {
        "organizations": [{"uuid": ORG, "api_key_env": "CREDLY_TOKEN_ACME"}],
        "templates": [{"uuid": T1, "active": True, "requirements": [
            {"id": "r", "event_type": "org.openedx.learning.course.passing.status.updated.v1"}]}],
    })))
    emulator_templates = f"{stack.emulator.url}/_emulator/templates"
    httpx.post(emulator_templates, json={"uuid": T1, "org": ORG, "name": "One renamed", "state": "active"}).raise_for_status()
    httpx.post(emulator_templates, json={"uuid": T3, "org": ORG, "name": "Three", "state": "archived"}).raise_for_status()
    out = stack.cli("templates", "sync", "--org", ORG).stdout
    assert "pulled 2 active template(s), 0 new" in out
    export = stack.cli("config", "export").stdout
    templates = {t["uuid"]: t for t in yaml.safe_load(export)["templates"]}
    assert T3 not in templates  # only active templates are pulled
    assert templates[T1]["active"] is True and templates[T2]["active"] is False
    assert "One renamed" in export


def test_unknown_organization_is_refused(stack: Stack) -> None:
    proc = stack.cli("templates", "sync", "--org", "0b8a3f0e-0000-4000-8000-0000000000ff", check=False)
    assert proc.returncode != 0 and "not configured" in proc.stderr


def _write(stack: Stack, doc: dict) -> str:
    path = stack.workdir / "cfg.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)
