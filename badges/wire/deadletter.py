"""Headers of a dead-lettered message (docs/CONTRACT.md "Dead letters").

The key and value go out as the original bytes; the original headers are kept unchanged, in
order, so the message can be replayed as it was once the cause is fixed.

For a Redis Streams entry the source "topic" is the stream, the partition ``0`` (a stream is one
ordered log) and the offset the entry id (``<ms>-<seq>``), hence ``int | str``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

MAX_DETAIL_BYTES = 1000


def dead_letter_headers(
    original_headers: Sequence[tuple[str, bytes]] | None,
    reason: str,
    detail: str,
    topic: str,
    partition: int | str,
    offset: int | str,
    now: datetime | None = None,
) -> list[tuple[str, bytes]]:
    when = now or datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    headers = list(original_headers or ())
    headers += [
        ("dlq_reason", reason.encode()),
        ("dlq_detail", detail.encode()[:MAX_DETAIL_BYTES].decode("utf-8", "ignore").encode()),
        ("dlq_source_topic", topic.encode()),
        ("dlq_source_partition", str(partition).encode()),
        ("dlq_source_offset", str(offset).encode()),
        ("dlq_time", when.astimezone(timezone.utc).isoformat().encode()),
    ]
    return headers
