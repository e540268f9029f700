"""Stream records applied to the cached aggregates (fakeredis; the real stream is in tests/faults)."""

from __future__ import annotations

from typing import Any

from service.changes.applier import ChangeApplier
from service.domain.model import StoredSession
from service.domain.roster import Roster
from service.dynamodb import codec
from service.redis.cache import AggregateCache
from tests.unit.test_cache_lua import A1, A2, B1, KEY, make_cache, rebuild, served, totals_of
from tests.unit.test_stats import FakeStore

USER, COURSE = "user-1", "course-1"


def record(event: str, stored: StoredSession) -> dict[str, Any]:
    item = codec.encode(USER, COURSE, stored)
    keys = {name: item[name] for name in (codec.PARTITION_KEY, codec.SORT_KEY)}
    change: dict[str, Any] = {"Keys": keys}
    if event != "REMOVE":
        change["NewImage"] = item
    return {"eventName": event, "dynamodb": change}


def applier_for(cache: AggregateCache) -> ChangeApplier:
    return ChangeApplier(cache, Roster(FakeStore(), cache))


async def test_a_change_reaches_a_cached_aggregate_and_repeats_are_harmless(redis: Any) -> None:
    cache = make_cache(redis)
    await rebuild(cache, [A1])
    applier = applier_for(cache)
    # At least once, and possibly after the request path's own update of the same write.
    await applier.apply([record("INSERT", B1), record("MODIFY", A2), record("INSERT", B1), record("MODIFY", A2)])
    assert await served(cache) == totals_of(A2, B1)


async def test_a_late_older_image_is_ignored(redis: Any) -> None:
    cache = make_cache(redis)
    await rebuild(cache, [A2])
    await applier_for(cache).apply([record("MODIFY", A1)])
    assert await served(cache) == totals_of(A2)


async def test_nothing_is_cached_for_an_aggregate_nobody_read(redis: Any) -> None:
    await applier_for(make_cache(redis)).apply([record("INSERT", A1)])
    assert await redis.exists(KEY) == 0


async def test_a_removal_drops_the_aggregate_for_a_rebuild_from_nothing(redis: Any) -> None:
    cache = make_cache(redis)
    await rebuild(cache, [A1, B1])
    await applier_for(cache).apply([record("REMOVE", B1)])
    assert await redis.exists(KEY) == 0


async def test_an_image_without_a_version_is_skipped(redis: Any) -> None:
    cache = make_cache(redis)
    await rebuild(cache, [A1])
    keys_only = record("INSERT", B1)
    keys_only["dynamodb"]["NewImage"] = dict(keys_only["dynamodb"]["Keys"])
    await applier_for(cache).apply([keys_only])
    assert await served(cache) == totals_of(A1)


async def test_a_tombstone_takes_its_session_out(redis: Any) -> None:
    cache = make_cache(redis)
    await rebuild(cache, [A1, B1])
    deleted = StoredSession(A1.stats, A1.version + 1, deleted=True)
    await applier_for(cache).apply([record("MODIFY", deleted), record("MODIFY", A1)])
    assert await served(cache) == totals_of(B1)


async def test_every_learner_course_a_batch_touches_is_refreshed_once_and_rows_own_records_are_skipped(
    redis: Any,
) -> None:
    cache = make_cache(redis)
    store = FakeStore()
    store.items[USER, COURSE, A1.stats.session_id] = A1
    refreshed: list[tuple[str, str]] = []

    class CountingRoster(Roster):
        async def refresh(self, user_id: str, course_id: str) -> None:
            refreshed.append((user_id, course_id))
            await super().refresh(user_id, course_id)

    row_record = {"eventName": "MODIFY", "dynamodb": {"Keys": codec.row_key(COURSE, USER)}}
    await ChangeApplier(cache, CountingRoster(store, cache)).apply(
        [record("INSERT", A1), row_record, record("MODIFY", A1)]
    )
    assert refreshed == [(USER, COURSE)]
    assert store.rows[COURSE, USER].totals == totals_of(A1)
