"""Pure parts of the Credly package: names, issued_at, filters, Retry-After, response models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from badges.credly.models import (
    Badge,
    BadgeTemplate,
    CredlyEvent,
    CredlyData,
    IssueRequest,
    Page,
    badge_filter,
    evidence_summary,
    format_issued_at,
    split_name,
)
from tenacity import RetryCallState

from badges.credly.errors import (
    CredlyAuthError,
    CredlyNotFound,
    CredlyRateLimited,
    CredlyServerError,
    CredlyUnavailable,
    CredlyValidationError,
)
from badges.credly.retry import is_transient, parse_retry_after, wait_credly


@pytest.mark.parametrize(
    ("full_name", "expected"),
    [
        ("Ada Lovelace", ("Ada", "Lovelace")),
        ("Ada King Lovelace", ("Ada", "King Lovelace")),  # split at the FIRST space
        ("  Ada   Lovelace  ", ("Ada", "Lovelace")),
        ("Plato", ("Plato", "Plato")),  # one word fills both
        ("", ("ada_l", "ada_l")),  # empty falls back to the username
        ("   ", ("ada_l", "ada_l")),
        (None, ("ada_l", "ada_l")),
    ],
)
def test_split_name(full_name: str | None, expected: tuple[str, str]) -> None:
    assert split_name(full_name, "ada_l") == expected


@pytest.mark.parametrize(
    ("ce_time", "expected"),
    [
        ("2024-05-01T10:20:30+02:00", "2024-05-01 10:20:30 +0200"),
        ("2024-05-01T10:20:30.123456+00:00", "2024-05-01 10:20:30 +0000"),
        ("2024-05-01T10:20:30Z", "2024-05-01 10:20:30 +0000"),
        ("2024-05-01T10:20:30", "2024-05-01 10:20:30 +0000"),  # naive means UTC
        ("2024-12-31T23:59:59-05:30", "2024-12-31 23:59:59 -0530"),
    ],
)
def test_issued_at_is_the_event_time_in_credly_format(ce_time: str, expected: str) -> None:
    assert format_issued_at(ce_time) == expected


def test_issued_at_accepts_datetimes() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert format_issued_at(when) == "2024-01-02 03:04:05 +0100"


def test_issue_request_for_learner() -> None:
    req = IssueRequest.for_learner(email="ada@example.com", full_name="Ada Lovelace",
                                   username="ada", badge_template_id="tpl",
                                   completed_at="2024-05-01T10:20:30Z")
    assert req.body() == {
        "recipient_email": "ada@example.com", "issued_to_first_name": "Ada",
        "issued_to_last_name": "Lovelace", "badge_template_id": "tpl",
        "issued_at": "2024-05-01 10:20:30 +0000",
    }


def test_issue_request_carries_earner_id_expiry_and_evidence() -> None:
    req = IssueRequest.for_learner(
        email="ada@example.com", full_name="Ada Lovelace", username="ada", badge_template_id="tpl",
        completed_at="2024-05-01T10:20:30Z", earner_id=42, expires_at="2025-05-01T10:20:30+00:00",
        evidence=evidence_summary(["Pass the Demo course", "e2"], "2024-05-01T10:20:30Z"),
    )
    body = req.body()
    assert (body["issuer_earner_id"], body["expires_at"]) == ("42", "2025-05-01 10:20:30 +0000")
    assert body["evidence"] == [{
        "type": "IdEvidence", "title": "Completed requirements",
        "description": "Pass the Demo course, e2 (completed 2024-05-01 10:20:30 +0000)"}]


def test_issue_request_rejects_a_badly_formatted_issued_at() -> None:
    with pytest.raises(ValidationError):
        IssueRequest(recipient_email="a@b.c", issued_to_first_name="A", issued_to_last_name="B",
                     badge_template_id="t", issued_at="2024-05-01T10:20:30Z")


def test_badge_filter_uses_credly_syntax() -> None:
    assert badge_filter(recipient_email="a+b@x.org", badge_template_id="T1") == (
        "recipient_email::a+b@x.org|badge_template_id::T1"
    )


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("Wed, 01 May 2024 12:00:07 GMT", now) == 7.0
    assert parse_retry_after("Wed, 01 May 2024 11:59:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("-4", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("", now) is None


def test_read_models_ignore_unknown_fields() -> None:
    page = Page[BadgeTemplate].model_validate({
        "data": [{"id": "t", "name": "N", "state": "active", "skills": [], "owner": {"id": "o"}}],
        "metadata": {"total_pages": 3, "current_page": 1,
                     "next_page_url": "https://x/v1/organizations/o/badge_templates?page=2"},
    })
    assert page.data[0].owner is not None and page.data[0].owner.id == "o"
    assert page.metadata.total_pages == 3
    badge = CredlyData[Badge].model_validate(
        {"data": {"id": "b", "state": "pending", "badge_template": {"id": "t", "x": 1}, "y": 2}}
    ).data
    assert badge.template_id == "t"
    event = CredlyData[CredlyEvent].model_validate({"data": {
        "id": "e", "event_type": "badge_template.changed", "organization_id": "o",
        "badge_template": {"id": "t", "name": "N", "state": "archived"}}}).data
    assert event.badge_template is not None and event.badge_template.state == "archived"


def _state_after(exc: BaseException, attempt: int) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]  # a bare state: the policy reads outcome and attempt
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_backoff_grows_is_capped_and_yields_to_retry_after() -> None:
    wait = wait_credly(initial_s=0.5, max_s=4.0)
    err = CredlyServerError("boom", status=500)
    assert 0.5 <= wait(_state_after(err, 1)) <= 1.0
    assert 2.0 <= wait(_state_after(err, 3)) <= 2.5
    assert wait(_state_after(err, 10)) == 4.0
    limited = CredlyRateLimited("slow down", retry_after=7.0)
    assert 7.0 <= wait(_state_after(limited, 1)) <= 7.71  # the hint wins over the cap
    assert wait(_state_after(CredlyServerError("x", retry_after=2.0), 1)) >= 2.0


def test_transient_errors() -> None:
    assert is_transient(CredlyServerError("x")) and is_transient(CredlyUnavailable("x"))
    assert is_transient(CredlyRateLimited("x"))
    for exc in (CredlyAuthError("x"), CredlyNotFound("x"), CredlyValidationError("x")):
        assert not is_transient(exc)
