"""The use cases over an in-memory store and a fakeredis aggregate cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

import fakeredis
import pytest

from service.domain.errors import NotFound
from service.domain.model import CourseFigures, CourseTotals, LearnerRow, SessionStats, StoredSession, WriteOutcome
from service.domain.ports import Claimed, Hit, ReadResult
from service.domain.roster import Roster
from service.domain.stats import StatsService
from service.dynamodb.store import SessionStore
from service.redis.breaker import CircuitBreaker
from service.redis.cache import AggregateCache, aggregate_key
from service.telemetry.metrics import Metrics

USER, OTHER_USER = "user-1", "user-2"
COURSE, OTHER_COURSE = "course-1", "course-2"
KEY = aggregate_key(USER, COURSE)


class FakeStore(SessionStore):
    """SessionStore's contract in memory: versions grow by one per change, pages of two."""

    def __init__(self) -> None:  # no DynamoDB client to hold
        self.items: dict[tuple[str, str, str], StoredSession] = {}
        self.rows: dict[tuple[str, str], LearnerRow] = {}
        self.course_queries = 0

    async def upsert(self, user_id: str, course_id: str, stats: SessionStats) -> tuple[WriteOutcome, StoredSession]:
        key = (user_id, course_id, stats.session_id)
        previous = self.items.get(key)
        if previous is not None and previous.stats == stats and not previous.deleted:
            return WriteOutcome.UNCHANGED, previous
        self.items[key] = StoredSession(stats, previous.version + 1 if previous else 1)
        created = previous is None or previous.deleted
        return (WriteOutcome.CREATED if created else WriteOutcome.REPLACED), self.items[key]

    async def delete(self, user_id: str, course_id: str, session_id: str) -> StoredSession | None:
        key = (user_id, course_id, session_id)
        previous = self.items.get(key)
        if previous is None or previous.deleted:
            return None
        self.items[key] = StoredSession(SessionStats(session_id, 0, 0, 0), previous.version + 1, deleted=True)
        return self.items[key]

    async def get(self, user_id: str, course_id: str, session_id: str) -> StoredSession | None:
        stored = self.items.get((user_id, course_id, session_id))
        return None if stored is None or stored.deleted else stored

    async def row_revision(self, course_id: str, user_id: str) -> int | None:
        stored = self.rows.get((course_id, user_id))
        return None if stored is None else stored.revision

    async def put_row(self, course_id: str, row: LearnerRow, read: int | None) -> bool:
        if await self.row_revision(course_id, row.user_id) != read:
            return False
        self.rows[course_id, row.user_id] = row
        return True

    async def delete_row(self, course_id: str, user_id: str, read: int | Literal["any"] | None = "any") -> bool:
        if read != "any" and await self.row_revision(course_id, user_id) != read:
            return False
        self.rows.pop((course_id, user_id), None)
        return True

    async def roster(self, course_id: str) -> list[LearnerRow]:
        return [row for (course, _), row in sorted(self.rows.items()) if course == course_id]

    async def erase(self, user_id: str) -> set[str]:
        erased = [key for key in self.items if key[0] == user_id]
        for key in erased:
            del self.items[key]
        return {course for _, course, _ in erased}

    async def course_pages(self, user_id: str, course_id: str) -> AsyncIterator[list[StoredSession]]:
        self.course_queries += 1
        sessions = self.course(user_id, course_id)
        for start in range(0, max(len(sessions), 1), 2):
            await asyncio.sleep(0)  # a network round trip: other readers get to run
            yield sessions[start : start + 2]

    async def ping(self) -> None:
        return None

    def course(self, user_id: str, course_id: str) -> list[StoredSession]:
        return [
            item for (user, course, _), item in sorted(self.items.items()) if (user, course) == (user_id, course_id)
        ]

    def totals(self, user_id: str = USER, course_id: str = COURSE) -> CourseTotals:
        return CourseTotals.of(item.stats for item in self.course(user_id, course_id) if not item.deleted)


class Harness:
    def __init__(self, cache_type: type[AggregateCache] = AggregateCache, busy_wait_seconds: float = 1.0) -> None:
        self.server = fakeredis.FakeServer()
        self.redis = fakeredis.FakeAsyncRedis(server=self.server)
        self.store = FakeStore()
        self.metrics = Metrics()
        self.cache = cache_type(
            self.redis,
            ttl_seconds=60,
            max_age_seconds=60,
            lock_seconds=5.0,
            breaker=CircuitBreaker(failure_threshold=1_000),
        )
        self.service = StatsService(self.store, self.cache, self.metrics, busy_wait_seconds=busy_wait_seconds)

    async def record(self, session_id: str, modules: int, score_cents: int, time_ms: int) -> WriteOutcome:
        outcome, stats = await self.service.record(
            USER, COURSE, SessionStats(session_id, modules, score_cents, time_ms)
        )
        assert stats == SessionStats(session_id, modules, score_cents, time_ms)
        return outcome

    def counter(self, name: str) -> float:
        return self.metrics.registry.get_sample_value(f"stats_cache_{name}_total") or 0.0


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    created = Harness()
    yield created
    await created.redis.aclose()


async def test_record_then_course_matches_the_store(harness: Harness) -> None:
    assert await harness.record("s1", 3, 5000, 100) is WriteOutcome.CREATED
    assert await harness.record("s2", 1, 10000, 50) is WriteOutcome.CREATED
    assert await harness.service.course(USER, COURSE) == harness.store.totals()
    # Replacing a session counts its new values only; re-posting changes nothing.
    assert await harness.record("s1", 4, 2500, 200) is WriteOutcome.REPLACED
    assert await harness.record("s1", 4, 2500, 200) is WriteOutcome.UNCHANGED
    totals = await harness.service.course(USER, COURSE)
    assert totals == harness.store.totals()
    assert (totals.sessions, totals.modules, totals.time_ms) == (2, 5, 250)


async def test_a_warm_aggregate_is_served_by_redis(harness: Harness) -> None:
    await harness.record("s1", 3, 5000, 100)
    await harness.service.course(USER, COURSE)
    await harness.record("s2", 2, 7000, 10)
    assert await harness.service.course(USER, COURSE) == harness.store.totals()
    assert harness.store.course_queries == 1
    assert harness.counter("hits") == 1


async def test_concurrent_misses_cause_one_rebuild(harness: Harness) -> None:
    for index in range(5):
        await harness.record(f"s{index}", index, 1000 * index, 10)
    await harness.redis.flushall()
    results = await asyncio.gather(*(harness.service.course(USER, COURSE) for _ in range(100)))
    assert results == [harness.store.totals()] * 100
    assert harness.store.course_queries == 1
    assert harness.counter("rebuilds") == 1
    # Every read missed, and all of them were served by the one rebuild.
    assert harness.counter("misses") == 100
    # The rebuild was stored back: the next read is a hit.
    assert isinstance(await harness.cache.read(KEY), Hit)


class StalledStore(FakeStore):
    """A table whose course Query never answers."""

    async def course_pages(self, user_id: str, course_id: str) -> AsyncIterator[list[StoredSession]]:
        self.course_queries += 1
        await asyncio.Event().wait()
        yield []


async def test_closing_stops_a_rebuild_whose_readers_have_gone(harness: Harness) -> None:
    harness.service = StatsService(StalledStore(), harness.cache, harness.metrics, busy_wait_seconds=1.0)
    reader = asyncio.ensure_future(harness.service.course(USER, COURSE))
    await asyncio.sleep(0.01)  # the rebuild starts, its Query under way
    reader.cancel()  # the client went away; the shielded rebuild goes on
    await asyncio.gather(reader, return_exceptions=True)
    assert [task for task in asyncio.all_tasks() if "_resolve_miss" in repr(task)] != []
    await harness.service.aclose()
    # Nothing of it is left running: the lock it held is released, and the next reader rebuilds.
    assert [task for task in asyncio.all_tasks() if "_resolve_miss" in repr(task)] == []
    assert isinstance(await harness.cache.read(KEY), Claimed)


async def test_redis_down_means_slower_not_wrong(harness: Harness) -> None:
    await harness.record("s1", 3, 5000, 100)
    await harness.service.course(USER, COURSE)
    harness.server.connected = False
    assert await harness.record("s1", 6, 8000, 300) is WriteOutcome.REPLACED
    assert await harness.record("s2", 1, 100, 1) is WriteOutcome.CREATED
    assert await harness.service.course(USER, COURSE) == harness.store.totals()
    assert harness.counter("fallback_reads") == 1
    harness.server.connected = True
    # The cached aggregate predates both writes: it must not come back.
    assert await harness.service.course(USER, COURSE) == harness.store.totals()
    assert await harness.service.course(USER, COURSE) == harness.store.totals()
    assert harness.counter("hits") == 1


async def test_course_without_sessions_is_not_found(harness: Harness) -> None:
    await harness.record("s1", 3, 5000, 100)
    for user, course in ((USER, OTHER_COURSE), (OTHER_USER, COURSE)):
        with pytest.raises(NotFound):
            await harness.service.course(user, course)
    # A cached empty aggregate stays not found, and a first write then makes it visible.
    with pytest.raises(NotFound):
        await harness.service.course(USER, OTHER_COURSE)
    await harness.service.record(USER, OTHER_COURSE, SessionStats("s9", 1, 100, 1))
    assert (await harness.service.course(USER, OTHER_COURSE)).sessions == 1


async def test_session_is_only_visible_to_its_user_and_course(harness: Harness) -> None:
    await harness.record("s1", 3, 5000, 100)
    assert await harness.service.session(USER, COURSE, "s1") == SessionStats("s1", 3, 5000, 100)
    for user, course, session_id in ((USER, COURSE, "s2"), (USER, OTHER_COURSE, "s1"), (OTHER_USER, COURSE, "s1")):
        with pytest.raises(NotFound):
            await harness.service.session(user, course, session_id)


class LateClaimCache(AggregateCache):
    """The claiming reader's reply arrives after a competitor's Busy reply, as across pooled connections."""

    async def read(self, key: str, *, by_type: bool = False) -> ReadResult:
        result = await super().read(key, by_type=by_type)
        if isinstance(result, Claimed):
            await asyncio.sleep(0.01)
        return result


async def test_a_claim_that_arrives_late_is_not_leaked() -> None:
    harness = Harness(LateClaimCache, busy_wait_seconds=0.05)
    try:
        await harness.record("s1", 3, 5000, 100)
        await harness.redis.flushall()
        results = await asyncio.gather(*(harness.service.course(USER, COURSE) for _ in range(2)))
        assert results == [harness.store.totals()] * 2
        # Expected: the rebuild used the claim, so the aggregate is cached for the next reader.
        assert isinstance(await harness.cache.read(KEY), Hit)
    finally:
        await harness.redis.aclose()


async def test_a_deleted_session_leaves_every_route_and_can_be_posted_again(harness: Harness) -> None:
    await harness.record("s1", 3, 5000, 100)
    await harness.record("s2", 1, 10000, 50)
    await harness.service.course(USER, COURSE)  # cached
    await harness.service.delete(USER, COURSE, "s1")
    assert (
        await harness.service.course(USER, COURSE)
        == harness.store.totals()
        == CourseTotals.of([SessionStats("s2", 1, 10000, 50)])
    )
    with pytest.raises(NotFound):
        await harness.service.session(USER, COURSE, "s1")
    with pytest.raises(NotFound):
        await harness.service.delete(USER, COURSE, "s1")
    # The tombstone's version stays: posting the session again creates it at the next one.
    assert await harness.record("s1", 3, 5000, 100) is WriteOutcome.CREATED
    assert harness.store.items[USER, COURSE, "s1"].version == 3
    assert await harness.service.course(USER, COURSE) == harness.store.totals()


async def test_deleting_the_last_session_makes_the_course_not_found(harness: Harness) -> None:
    await harness.record("s1", 3, 5000, 100)
    await harness.service.course(USER, COURSE)
    await harness.service.delete(USER, COURSE, "s1")
    with pytest.raises(NotFound):
        await harness.service.course(USER, COURSE)
    await harness.redis.flushall()
    with pytest.raises(NotFound):
        await harness.service.course(USER, COURSE)


async def test_course_figures_follow_the_rows_that_refreshes_compute(harness: Harness) -> None:
    roster = Roster(harness.store, harness.cache)
    for user, sessions in ((USER, [("a", 2, 8000, 10), ("b", 4, 6000, 30)]), (OTHER_USER, [("c", 1, 10000, 5)])):
        for session_id, modules, score, time_ms in sessions:
            await harness.service.record(user, COURSE, SessionStats(session_id, modules, score, time_ms))
        await roster.refresh(user, COURSE)
    expected = CourseFigures(harness.store.totals(USER) + harness.store.totals(OTHER_USER), 2)
    assert await harness.service.course_figures(COURSE) == expected  # rebuilt from the rows
    assert await harness.service.course_figures(COURSE) == expected  # cached
    # A change after the course was cached reaches it through the refresh, once however often it runs.
    await harness.service.delete(OTHER_USER, COURSE, "c")
    for _ in range(2):
        await roster.refresh(OTHER_USER, COURSE)
    assert await harness.service.course_figures(COURSE) == CourseFigures(harness.store.totals(USER), 1)
    assert harness.store.rows[COURSE, OTHER_USER].totals == CourseTotals()
    # A recomputation that read an earlier revision never replaces a later row.
    stale = LearnerRow(OTHER_USER, CourseTotals(1, 1, 1, 1, 1), 2)
    assert not await harness.store.put_row(COURSE, stale, read=1)
    assert harness.store.rows[COURSE, OTHER_USER].totals == CourseTotals()


async def test_erasure_removes_the_learner_from_every_figure(harness: Harness) -> None:
    roster = Roster(harness.store, harness.cache)
    for user in (USER, OTHER_USER):
        for course in (COURSE, OTHER_COURSE):
            await harness.service.record(user, course, SessionStats(f"{user}-{course}", 2, 5000, 10))
            await roster.refresh(user, course)
            await harness.service.course(user, course)
    for course in (COURSE, OTHER_COURSE):
        assert (await harness.service.course_figures(course)).learners == 2
    await harness.service.erase(USER)
    for course in (COURSE, OTHER_COURSE):
        assert await harness.service.course_figures(course) == CourseFigures(
            harness.store.totals(OTHER_USER, course), 1
        )
        with pytest.raises(NotFound):
            await harness.service.course(USER, course)
    assert not [key for key in harness.store.rows if key[1] == USER]
    # Change capture's own records of the removals change nothing more.
    for course in (COURSE, OTHER_COURSE):
        await roster.refresh(USER, course)
        assert (await harness.service.course_figures(course)).learners == 1


async def test_a_recomputation_overtaken_by_another_consumer_starts_again(harness: Harness) -> None:
    await harness.record("s1", 3, 5000, 100)
    roster = Roster(harness.store, harness.cache)
    await roster.refresh(USER, COURSE)
    first = harness.store.rows[COURSE, USER]

    class Overtaken(FakeStore):
        """Another consumer stores the row between this one's read of it and its store."""

        overtakes = 1

        async def put_row(self, course_id: str, row: LearnerRow, read: int | None) -> bool:
            if self.overtakes:
                self.overtakes -= 1
                await FakeStore.put_row(self, course_id, LearnerRow(row.user_id, row.totals, row.revision), read)
            return await super().put_row(course_id, row, read)

    store = Overtaken()
    store.items, store.rows = harness.store.items, harness.store.rows
    await harness.record("s2", 1, 10000, 50)
    await Roster(store, harness.cache).refresh(USER, COURSE)
    assert store.rows[COURSE, USER].totals == harness.store.totals()
    assert store.rows[COURSE, USER].revision == first.revision + 2  # the other's store, then this one's


async def test_a_post_that_a_later_delete_overtook_answers_with_its_own_values() -> None:
    tombstone = StoredSession(SessionStats("s1", 0, 0, 0), 3, deleted=True)

    class Overtaken(FakeStore):
        async def upsert(self, user_id: str, course_id: str, stats: SessionStats) -> tuple[WriteOutcome, StoredSession]:
            return WriteOutcome.SUPERSEDED, tombstone

    harness = Harness()
    service = StatsService(Overtaken(), harness.cache, harness.metrics, busy_wait_seconds=1.0)
    posted = SessionStats("s1", 4, 5000, 10)
    assert await service.record(USER, COURSE, posted) == (WriteOutcome.SUPERSEDED, posted)
    await harness.redis.aclose()


async def test_a_learner_who_left_a_roster_is_dropped_from_the_course_once(harness: Harness) -> None:
    roster = Roster(harness.store, harness.cache)
    for user in (USER, OTHER_USER):
        await harness.service.record(user, COURSE, SessionStats(f"{user}-a", 2, 5000, 10))
        await roster.refresh(user, COURSE)
    key = harness.cache.course_key(COURSE)
    await harness.service.course_figures(COURSE)
    await harness.service.erase(USER)
    assert not await harness.redis.exists(key)  # dropped for a rebuild without them
    assert (await harness.service.course_figures(COURSE)).learners == 1
    # The erasure's own records: nothing left of theirs, so the rebuilt hash stays.
    for _ in range(3):
        await roster.refresh(USER, COURSE)
    assert await harness.redis.exists(key)
    # A store of their row that landed in a rebuild under way is found and dropped.
    await harness.cache.apply_change(key, LearnerRow(USER, CourseTotals(1, 1, 1, 1, 1), 9))
    await roster.refresh(USER, COURSE)
    assert not await harness.redis.exists(key)
