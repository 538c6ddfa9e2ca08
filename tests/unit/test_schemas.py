"""The committed reader schemas are exactly what the installed openedx-events generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from openedx_events.event_bus.avro.serializer import AvroSignalSerializer

from badges.schemas.catalog import load_catalog
from tests.support import openedx

ROOT = Path(__file__).resolve().parents[2]


def test_generate_check_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "badges.schemas.generate", "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("event_type", load_catalog().event_types)
def test_reader_schema_is_the_signal_schema(event_type: str) -> None:
    spec = load_catalog()[event_type]
    assert spec.schema == AvroSignalSerializer(openedx.signal(event_type)).schema
    assert spec.schema["name"] == "CloudEvent" and spec.schema["namespace"] == event_type


def test_catalog_covers_the_passing_status_events_and_marks_own_output() -> None:
    catalog = load_catalog()
    assert {openedx.COURSE_PASSING, openedx.CCX_COURSE_PASSING} <= set(catalog.rule_event_types)
    own = {s.event_type for s in catalog if s.own_output}
    assert own == {openedx.BADGE_AWARDED, openedx.BADGE_REVOKED}
