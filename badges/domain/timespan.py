"""ISO 8601 durations and instants of the configuration (docs/CONTRACT.md "Rules beyond the reference"), in microseconds.

One parser for the validator, the entities and the compiled configuration, so that what
``config validate`` accepts is exactly what the engine computes with. Years and months are
refused: they have no fixed length, and a badge that expires "P1Y" after a leap day would
depend on the calendar; days, weeks and clock units are exact.
"""

from __future__ import annotations

import re
from datetime import datetime

from badges.wire.timeparse import EPOCH, _ONE_US

_DURATION = re.compile(
    r"P(?:(?P<W>\d+)W)?(?:(?P<D>\d+)D)?"
    r"(?:T(?:(?P<H>\d+)H)?(?:(?P<M>\d+)M)?(?:(?P<S>\d+(?:\.\d{1,6})?)S)?)?"
)
_US = {"W": 7 * 86_400_000_000, "D": 86_400_000_000, "H": 3_600_000_000, "M": 60_000_000}


def parse_duration(text: str) -> int:
    """``P180D``, ``P2W``, ``PT12H``, ``P1DT30M`` ... as microseconds (> 0). Raises ValueError."""
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if match is None or value in ("P", "PT") or value.endswith("T"):
        if value.startswith("P") and re.search(r"\d[YM]", value[1:].split("T")[0]):
            raise ValueError(f"{text!r}: years and months have no fixed length; use days (P365D)")
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P180D or PT12H")
    total = 0
    for unit, amount in match.groupdict().items():
        if amount is None:
            continue
        if unit == "S":
            whole, _, frac = amount.partition(".")
            total += int(whole) * 1_000_000 + int((frac + "000000")[:6])
        else:
            total += int(amount) * _US[unit]
    if total <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return total


def parse_instant(text: str) -> int:
    """An ISO 8601 date-time with a time zone (``2026-01-01T00:00:00Z``) as microseconds since
    the epoch. A time without a zone is refused: a window must not depend on the server's zone."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date-time such as 2026-01-01T00:00:00Z"
        ) from None
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} needs a time zone (Z or +hh:mm)")
    return (dt - EPOCH) // _ONE_US
