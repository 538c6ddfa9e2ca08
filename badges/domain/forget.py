"""Forgetting a learner (docs/CONTRACT.md "Forgetting a learner"): the records without name, username and e-mail.

What stays is what prevents a duplicate badge and keeps Credly consistent: the LMS user id (the
key), each template's badge status and the events' ids and times in ``progress``; the Credly
badge id, state and status of each badge in ``issuance``. Key fields taken from the payload under
a ``pii`` path (``user.pii.email`` in a rule) go too.

``forgotten_us`` marks the identity: an event from before the forget (a replay of old input)
never brings the identity back (``progress.merge_identity``). An event newer than that carries
the identity again, as the LMS sent it: Open edX retires an account only after deactivating it,
so none should arrive.
"""

from __future__ import annotations

from typing import Any

PII_FIELDS = ("username", "email", "name")


def blank_identity(identity: dict[str, Any], learner_id: int) -> dict[str, Any]:
    return {**identity, "id": learner_id, **dict.fromkeys(PII_FIELDS, "")}


def _without_pii_keys(key_fields: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in key_fields.items() if "pii" not in k.split(".")}


def forget_progress(state: dict[str, Any], learner_id: int, now_us: int) -> dict[str, Any]:
    """The progress record without the learner's identity (a new dict; ``state`` unchanged)."""
    identity = blank_identity(state.get("learner") or {"time_us": 0}, learner_id)
    identity["forgotten_us"] = max(now_us, int(identity.get("time_us", 0)))
    templates = {}
    for uuid, tpl in state.get("templates", {}).items():
        badge = tpl.get("badge")
        if badge is not None and "key_fields" in badge:
            tpl = {**tpl, "badge": {**badge, "key_fields": _without_pii_keys(badge["key_fields"])}}
        templates[uuid] = tpl
    return {**state, "learner": identity, "templates": templates}


def _decision(doc: dict[str, Any], learner_id: int) -> dict[str, Any]:
    return {**doc, "learner": blank_identity(doc.get("learner") or {}, learner_id),
            "key_fields": _without_pii_keys(doc.get("key_fields") or {})}


def forget_issuance(records: dict[str, Any], learner_id: int) -> dict[str, Any]:
    """The issuance records (by template) without the learner's identity."""
    out = {}
    for template, rec in records.items():
        rec = dict(rec)
        if "learner" in rec:
            rec["learner"] = blank_identity(rec["learner"] or {}, learner_id)
        if rec.get("pending"):  # an intent not carried out yet keeps its decisions
            rec["pending"] = [_decision(d, learner_id) for d in rec["pending"]]
        rec["forgotten"] = True
        out[template] = rec
    return out


def is_forgotten(state: dict[str, Any] | None) -> bool:
    return bool(state and (state.get("learner") or {}).get("forgotten_us"))
