"""Stream records applied to the cached aggregates (fakeredis; the real stream is in tests/faults)."""

from __future__ import annotations

from typing import Any

from service.changes.applier import ChangeApplier
from service.domain.model import StoredSession
from service.dynamodb import codec
from tests.unit.test_cache_lua import A1, A2, B1, KEY, make_cache, rebuild, served, totals_of

USER, COURSE = "user-1", "course-1"


def record(event: str, stored: StoredSession) -> dict[str, Any]:
    item = codec.encode(USER, COURSE, stored)
    keys = {name: item[name] for name in (codec.PARTITION_KEY, codec.SORT_KEY)}
    change: dict[str, Any] = {"Keys": keys}
    if event != "REMOVE":
        change["NewImage"] = item
    return {"eventName": event, "dynamodb": change}


async def test_a_change_reaches_a_cached_aggregate_and_repeats_are_harmless(redis: Any) -> None:
    cache = make_cache(redis)
    await rebuild(cache, [A1])
    applier = ChangeApplier(cache)
    # At least once, and possibly after the request path's own update of the same write.
    await applier.apply([record("INSERT", B1), record("MODIFY", A2), record("INSERT", B1), record("MODIFY", A2)])
    assert await served(cache) == totals_of(A2, B1)


async def test_a_late_older_image_is_ignored(redis: Any) -> None:
    cache = make_cache(redis)
    await rebuild(cache, [A2])
    await ChangeApplier(cache).apply([record("MODIFY", A1)])
    assert await served(cache) == totals_of(A2)


async def test_nothing_is_cached_for_an_aggregate_nobody_read(redis: Any) -> None:
    await ChangeApplier(make_cache(redis)).apply([record("INSERT", A1)])
    assert await redis.exists(KEY) == 0


async def test_a_removal_drops_the_aggregate_for_a_rebuild_from_nothing(redis: Any) -> None:
    cache = make_cache(redis)
    await rebuild(cache, [A1, B1])
    await ChangeApplier(cache).apply([record("REMOVE", B1)])
    assert await redis.exists(KEY) == 0


async def test_an_image_without_a_version_is_skipped(redis: Any) -> None:
    cache = make_cache(redis)
    await rebuild(cache, [A1])
    keys_only = record("INSERT", B1)
    keys_only["dynamodb"]["NewImage"] = dict(keys_only["dynamodb"]["Keys"])
    await ChangeApplier(cache).apply([keys_only])
    assert await served(cache) == totals_of(A1)
