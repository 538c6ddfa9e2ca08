"""CloudEvents ``time`` (ISO 8601) to microseconds since the epoch.

Integer arithmetic on purpose: a float timestamp loses microseconds for present-day instants,
and event ordering compares these values.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US: Final = timedelta(microseconds=1)
_fromisoformat = datetime.fromisoformat


def iso_to_us(text: str) -> int:
    """Parse an ISO 8601 instant ("Z" and offsets accepted; naive means UTC). Raises ValueError."""
    dt = _fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - EPOCH) // _ONE_US


def us_to_iso(us: int) -> str:
    """The instant as edx-event-bus writes it: ``datetime.isoformat()`` of a UTC datetime."""
    return (EPOCH + timedelta(microseconds=us)).isoformat()


def ms_to_iso(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=ms)).isoformat()
