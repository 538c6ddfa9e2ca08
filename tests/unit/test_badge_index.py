"""The badge index behind /api/badges: order, cursor pages, status filter, counts, and the
merge of several workers' pages into one."""

from __future__ import annotations

from typing import Any

import pytest

from badges.web.badge_index import BadgeIndex, decode_cursor, encode_cursor
from badges.web.http import HttpError
from badges.web.learners import merge_badges

T1, T2 = "7d4f6a52-0000-4000-8000-0000000000aa", "7d4f6a52-0000-4000-8000-0000000000bb"


def _rec(status: str, minute: int) -> dict[str, Any]:
    return {"status": status, "updated": f"2026-01-01T10:{minute:02d}:00+00:00"}


def _index() -> BadgeIndex:
    index = BadgeIndex({0})
    index.put(1, {T1: _rec("issued", 1), T2: _rec("failed", 2)})
    index.put(2, {T1: _rec("issued", 5)})
    index.put(3, {T1: _rec("revoked", 3), T2: _rec("issued", 4)})
    return index


def _walk(index: BadgeIndex, status: str | None, limit: int) -> list[tuple[int, str]]:
    seen: list[tuple[int, str]] = []
    after = None
    while True:
        keys, _ = index.page(status, after, limit)
        if not keys:
            return seen
        seen += [(k[2], k[3]) for k in keys]
        after = decode_cursor(encode_cursor(keys[-1]))


def test_failed_first_then_most_recent() -> None:
    assert _walk(_index(), None, 100) == [(1, T2), (2, T1), (3, T2), (3, T1), (1, T1)]


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_cursor_pages_cover_everything_once(limit: int) -> None:
    assert _walk(_index(), None, limit) == _walk(_index(), None, 100)
    assert _walk(_index(), "issued", limit) == [(2, T1), (3, T2), (1, T1)]


def test_a_learner_written_again_moves_and_counts_follow() -> None:
    index = _index()
    assert index.counts() == {"issued": 3, "failed": 1, "revoked": 1}
    index.put(1, {T1: _rec("issued", 1), T2: _rec("issued", 9)})  # the retry succeeded
    assert index.counts() == {"issued": 4, "revoked": 1}
    assert _walk(index, None, 100)[0] == (1, T2)
    index.put(2, None)
    assert index.page("issued", None, 100)[1] == 3


def test_a_bad_cursor_is_a_400() -> None:
    with pytest.raises(HttpError) as err:
        decode_cursor("not-a-cursor")
    assert err.value.status == 400


def _answer(url: str, partitions: list[int], index: BadgeIndex, limit: int, after: Any = None) -> dict[str, Any]:
    keys, matching = index.page(None, after, limit)
    rows = [{"learner": {"id": k[2]}, "template": {"uuid": k[3]}, "cursor": encode_cursor(k)} for k in keys]
    return {"url": url, "self": False, "ok": True, "error": None, "partitions": partitions,
            "data": {"partitions": partitions, "counts": index.counts(), "matching": matching, "badges": rows,
                     "more": len(keys) == limit}}


def test_workers_pages_merge_into_one_order() -> None:
    one, two = BadgeIndex({0}), BadgeIndex({1})
    one.put(1, {T1: _rec("issued", 1), T2: _rec("issued", 3)})
    two.put(2, {T1: _rec("issued", 2), T2: _rec("failed", 0)})
    seen, after = [], None
    while True:
        merged = merge_badges([_answer("a", [0], one, 2, after), _answer("b", [1], two, 2, after)], 2, 2)
        seen += [(r["learner"]["id"], r["template"]["uuid"]) for r in merged["badges"]]
        assert merged["complete"] and merged["matching"] == 4
        if merged["next"] is None:
            break
        after = decode_cursor(merged["next"])
    assert seen == [(2, T2), (1, T2), (2, T1), (1, T1)]


async def test_a_failed_rebuild_is_logged_and_leaves_the_worker_running(caplog: pytest.LogCaptureFixture) -> None:
    """The rebuild runs from a Faust timer, where an exception would crash the worker."""
    import asyncio
    from types import SimpleNamespace

    from badges.web.badge_index import BadgeIndexer

    recovered = asyncio.Event()
    recovered.set()
    consumer = SimpleNamespace(assignment=lambda: set())
    app = SimpleNamespace(rebalancing_count=1, rebalancing=False, consumer=consumer,
                          tables=SimpleNamespace(recovery=SimpleNamespace(completed=recovered)))
    settings = SimpleNamespace(decisions_topic="d", learner_events_topic="l")
    indexer = BadgeIndexer(SimpleNamespace(app=app, settings=settings))  # type: ignore[arg-type]  # what the timer reads

    async def broken(partitions: set[int]) -> None:
        raise OSError("the store went away")

    indexer.rebuild = broken  # type: ignore[method-assign]  # the failure under test
    await indexer.maybe_rebuild()
    assert "badge index: rebuild failed" in caplog.text
    assert indexer._built["rebalance"] == 1  # tried again at the next rebalance or after REBUILD_EVERY_S
