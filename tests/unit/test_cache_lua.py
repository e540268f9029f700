"""The Redis aggregate scripts, run by fakeredis's Lua engine."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from unittest.mock import ANY

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from service.domain.errors import CacheUnavailable
from service.domain.model import (
    CourseFigures,
    CourseSession,
    CourseTotals,
    LearnerRow,
    ModuleResult,
    SessionStats,
    StoredSession,
    TypeTotals,
)
from service.domain.ports import Busy, Claimed, Hit
from service.redis.breaker import CircuitBreaker
from service.redis.cache import REBUILD_CHUNK, AggregateCache, aggregate_key, points_key

KEY = aggregate_key("user-1", "course-1")
TTL_SECONDS = 60
LOCK_SECONDS = 5.0


def stored(
    session_id: str, version: int, modules: int, score_cents: int, time_ms: int, *, points: int = 0
) -> StoredSession:
    return StoredSession(SessionStats(session_id, modules, score_cents, time_ms, points=points), version)


A1 = stored("a", 1, 3, 5000, 100, points=12)
A2 = stored("a", 2, 5, 7000, 300)
B1 = stored("b", 1, 2, 9050, 40)


def totals_of(*sessions: StoredSession) -> CourseTotals:
    return CourseTotals.of(session.stats for session in sessions)


def make_cache(
    redis: Any,
    *,
    lock_seconds: float = LOCK_SECONDS,
    max_age_seconds: int = TTL_SECONDS,
    breaker: CircuitBreaker | None = None,
    module_types: tuple[str, ...] = (),
) -> AggregateCache:
    # A high threshold keeps the breaker out of tests that are about Redis failures themselves.
    return AggregateCache(
        redis,
        ttl_seconds=TTL_SECONDS,
        max_age_seconds=max_age_seconds,
        lock_seconds=lock_seconds,
        breaker=breaker or CircuitBreaker(failure_threshold=1_000),
        module_types=module_types,
    )


async def claim(cache: AggregateCache, key: str = KEY) -> str:
    result = await cache.read(key)
    assert isinstance(result, Claimed), result
    return result.incarnation


async def completed(
    cache: AggregateCache, key: str, incarnation: str, sessions: list[StoredSession]
) -> CourseTotals | None:
    figures = await cache.complete(key, incarnation, sessions)
    return None if figures is None else figures.totals


async def rebuild(cache: AggregateCache, sessions: list[StoredSession], key: str = KEY) -> CourseTotals | None:
    return await completed(cache, key, await claim(cache, key), sessions)


async def served(cache: AggregateCache, key: str = KEY) -> CourseTotals:
    result = await cache.read(key)
    assert isinstance(result, Hit), result
    return result.figures.totals


@pytest.fixture
def cache(redis: Any) -> AggregateCache:
    return make_cache(redis)


async def test_lua_time_is_supported(redis: Any) -> None:
    # READ_SCRIPT dates its lock with TIME; these tests rely on fakeredis running it.
    seconds, micros = await redis.eval("return redis.call('TIME')", 0)
    assert int(seconds) > 1_600_000_000
    assert 0 <= int(micros) < 1_000_000


async def test_a_write_on_a_missing_key_creates_an_incomplete_hash(cache: AggregateCache, redis: Any) -> None:
    await cache.apply_write(KEY, A1)
    fields = await redis.hgetall(KEY)
    assert b"c" not in fields
    assert fields[b"s:a"] == b"1:1:3:15000:5000:100:12"  # version, then n m w ss t p
    result = await cache.read(KEY)
    # Never served: the hash may be missing every session written before it existed.
    assert isinstance(result, Claimed)
    # The rebuild starts from nothing, under an incarnation of its own: the query it
    # runs next holds A1, and whatever the hash held is not merged into it.
    assert result.incarnation != fields[b"i"].decode()
    # Locked for the rebuild, with the node it was claimed on ('' where the server does not tell, as here).
    assert await redis.hgetall(KEY) == {b"i": result.incarnation.encode(), b"l": ANY, b"r": b""}


async def test_a_rebuild_drops_sessions_the_table_no_longer_holds(cache: AggregateCache, redis: Any) -> None:
    # What a max-age rebuild after a table restore sees: b vanished, a re-created at version 1.
    await rebuild(cache, [A1, B1])
    a_again = stored("a", 1, 1, 2500, 50)
    claim = await cache.read(KEY)
    assert isinstance(claim, Hit)
    await redis.hset(KEY, "a", "0")  # completed long ago: past the max age
    expired = await cache.read(KEY)
    assert isinstance(expired, Claimed)
    assert await completed(cache, KEY, expired.incarnation, [a_again]) == totals_of(a_again)
    assert await served(cache) == totals_of(a_again)


async def test_completion_serves_exact_totals(cache: AggregateCache) -> None:
    await cache.apply_write(KEY, A1)
    completed = await rebuild(cache, [A1, B1])
    assert completed == totals_of(A1, B1)
    assert await served(cache) == totals_of(A1, B1)


async def test_completion_of_an_empty_course_serves_zero_sessions(cache: AggregateCache) -> None:
    assert await rebuild(cache, []) == CourseTotals()
    assert await served(cache) == CourseTotals()


async def test_completion_with_another_incarnation_is_refused(cache: AggregateCache) -> None:
    await claim(cache)
    assert await completed(cache, KEY, "not-the-incarnation", [A1]) is None
    assert not isinstance(await cache.read(KEY), Hit)


async def test_applying_the_same_version_twice_changes_nothing(cache: AggregateCache, redis: Any) -> None:
    await rebuild(cache, [A1, B1])
    before = await redis.hgetall(KEY)
    await cache.apply_write(KEY, A1)
    await cache.apply_write(KEY, B1)
    assert await redis.hgetall(KEY) == before
    assert await served(cache) == totals_of(A1, B1)


async def test_an_older_version_arriving_late_is_ignored(cache: AggregateCache) -> None:
    await rebuild(cache, [A2, B1])
    await cache.apply_write(KEY, A1)
    assert await served(cache) == totals_of(A2, B1)


async def test_a_newer_version_replaces_the_contribution(cache: AggregateCache) -> None:
    await rebuild(cache, [A1, B1])
    await cache.apply_write(KEY, A2)
    totals = await served(cache)
    assert totals == totals_of(A2, B1)
    assert totals.sessions == 2


async def test_a_newer_version_can_lower_every_sum(cache: AggregateCache) -> None:
    # Negative differences must survive the script's integer formatting.
    lowered = stored("a", 3, 0, 0, 0)
    await rebuild(cache, [A2, B1])
    await cache.apply_write(KEY, lowered)
    assert await served(cache) == totals_of(lowered, B1)


async def test_aggregates_of_different_courses_are_separate(cache: AggregateCache) -> None:
    other = aggregate_key("user-1", "course-2")
    await rebuild(cache, [A1])
    await rebuild(cache, [B1], key=other)
    await cache.apply_write(other, stored("b", 2, 1, 1, 1))
    assert await served(cache) == totals_of(A1)


async def test_a_second_reader_is_busy_while_the_lock_is_held(cache: AggregateCache) -> None:
    incarnation = await claim(cache)
    assert await cache.read(KEY) == Busy()
    await cache.release(KEY)
    # A new claim starts a new rebuild from nothing; the released one can no longer complete.
    again = await claim(cache)
    assert again != incarnation
    assert await completed(cache, KEY, incarnation, [A1]) is None
    assert await completed(cache, KEY, again, [A1]) == totals_of(A1)


async def test_an_expired_lock_can_be_claimed_again(redis: Any) -> None:
    cache = make_cache(redis, lock_seconds=0.2)
    await claim(cache)
    assert await cache.read(KEY) == Busy()
    await asyncio.sleep(0.25)
    await claim(cache)


async def test_an_aggregate_past_its_maximum_age_is_rebuilt_and_repaired(redis: Any) -> None:
    cache = make_cache(redis, max_age_seconds=1)
    await rebuild(cache, [stored("s1", 1, 2, 5000, 10)])
    # Another task's lost update: DynamoDB moved to version 2 and this hash never heard of it.
    truth = [stored("s1", 2, 4, 9000, 30), stored("s2", 1, 1, 100, 1)]
    assert (await served(cache)).sessions == 1
    await asyncio.sleep(1.05)
    assert await rebuild(cache, truth) == CourseTotals.of(item.stats for item in truth)
    assert await served(cache) == CourseTotals.of(item.stats for item in truth)


async def flushall(redis: Any) -> None:
    await redis.flushall()


async def flush_then_write(redis: Any) -> None:
    await redis.flushall()
    await make_cache(redis).apply_write(KEY, A2)


async def evict(redis: Any) -> None:
    await redis.delete(KEY)


@pytest.mark.parametrize("interruption", [flushall, flush_then_write, evict])
@pytest.mark.parametrize("sessions", [[], [A1], [A1, B1]], ids=["none", "one", "two"])
async def test_completion_is_refused_after_the_key_was_lost(
    cache: AggregateCache,
    redis: Any,
    interruption: Callable[[Any], Awaitable[None]],
    sessions: list[StoredSession],
) -> None:
    incarnation = await claim(cache)
    await interruption(redis)
    # The rebuild's own apply recreates the key; it must not pass for the claimed one.
    assert await completed(cache, KEY, incarnation, sessions) is None
    assert await redis.exists(KEY) == 1
    new_incarnation = await claim(cache)
    assert new_incarnation != incarnation


async def test_chunked_completion_is_exact(cache: AggregateCache, redis: Any) -> None:
    rng = random.Random(7)
    sessions = [
        stored(
            f"s{index}", rng.randint(1, 9), rng.randint(0, 10_000), rng.randint(0, 10_000), rng.randint(0, 86_400_000)
        )
        for index in range(REBUILD_CHUNK + 3)
    ]
    assert await rebuild(cache, sessions) == totals_of(*sessions)
    assert await served(cache) == totals_of(*sessions)
    assert await redis.hlen(KEY) == len(sessions) + 11  # plus n m w ss t p L i c a e


async def test_a_flush_between_chunks_cancels_completion(cache: AggregateCache, redis: Any) -> None:
    sessions = [stored(f"s{index}", 1, 1, 100, 1) for index in range(REBUILD_CHUNK + 1)]
    incarnation = await claim(cache)
    evalsha = redis.evalsha
    chunks_applied = 0

    async def flush_after_first_chunk(*args: Any) -> Any:
        nonlocal chunks_applied
        reply = await evalsha(*args)
        chunks_applied += 1
        if chunks_applied == 1:
            await redis.flushall()
        return reply

    redis.evalsha = flush_after_first_chunk
    assert await completed(cache, KEY, incarnation, sessions) is None
    assert chunks_applied == 2


async def pttl(redis: Any) -> int:
    return int(await redis.pttl(KEY))


async def test_every_script_sets_the_ttl(cache: AggregateCache, redis: Any) -> None:
    ttl_ms = TTL_SECONDS * 1000
    await cache.apply_write(KEY, A1)
    assert 0 < await pttl(redis) <= ttl_ms
    await redis.pexpire(KEY, 1_000)
    incarnation = await claim(cache)
    assert await pttl(redis) > 1_000
    await redis.pexpire(KEY, 1_000)
    await completed(cache, KEY, incarnation, [A1])
    assert await pttl(redis) > 1_000
    # A hit renews the lifetime: aggregates in use stay, idle ones expire.
    await redis.pexpire(KEY, 1_000)
    await served(cache)
    assert 1_000 < await pttl(redis) <= ttl_ms


async def test_a_failed_write_marks_the_aggregate_stale(
    cache: AggregateCache, redis: Any, server: fakeredis.FakeServer
) -> None:
    await rebuild(cache, [A1, B1])
    server.connected = False
    with pytest.raises(CacheUnavailable):
        await cache.apply_write(KEY, A2)
    assert cache.stale_count == 1
    with pytest.raises(CacheUnavailable):
        await cache.read(KEY)
    assert cache.stale_count == 1
    server.connected = True
    # The complete hash lacks A2, so it is dropped instead of served.
    incarnation = await claim(cache)
    assert cache.stale_count == 0
    assert await completed(cache, KEY, incarnation, [A2, B1]) == totals_of(A2, B1)


async def test_repair_deletes_stale_aggregates(cache: AggregateCache, redis: Any, server: fakeredis.FakeServer) -> None:
    other = aggregate_key("user-2", "course-1")
    await rebuild(cache, [A1])
    await rebuild(cache, [B1], key=other)
    server.connected = False
    for key in (KEY, other):
        with pytest.raises(CacheUnavailable):
            await cache.apply_write(key, A2)
    with pytest.raises(CacheUnavailable):
        await cache.repair()
    assert cache.stale_count == 2
    server.connected = True
    assert await cache.repair() == 2
    assert await redis.exists(KEY, other) == 0
    assert cache.stale_count == 0
    assert await cache.repair() == 0


async def test_an_open_circuit_fails_fast_without_calling_redis(redis: Any, server: fakeredis.FakeServer) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=3600)
    cache = make_cache(redis, breaker=breaker)
    server.connected = False
    with pytest.raises(CacheUnavailable):
        await cache.ping()
    server.connected = True
    with pytest.raises(CacheUnavailable, match="circuit open"):
        await cache.apply_write(KEY, A1)
    assert await redis.exists(KEY) == 0
    assert cache.stale_count == 1


@pytest.fixture
async def other_process_redis(server: fakeredis.FakeServer) -> AsyncIterator[Any]:
    client = fakeredis.FakeAsyncRedis(server=server)
    yield client
    await client.aclose()


async def test_a_write_failing_while_a_stale_key_is_deleted_stays_stale(redis: Any, other_process_redis: Any) -> None:
    """Two processes share Redis; process A's delete of a stale key overlaps its next failed write."""
    cache_a, cache_b = make_cache(redis), make_cache(other_process_redis)
    db = {"a": A1}
    await rebuild(cache_b, list(db.values()))

    failing = False
    real_evalsha, real_delete = redis.evalsha, redis.delete
    deleted, resume = asyncio.Event(), asyncio.Event()

    async def evalsha(*args: Any) -> Any:
        if failing:
            raise RedisConnectionError("connection reset")
        return await real_evalsha(*args)

    async def delete(*keys: str) -> Any:
        reply = await real_delete(*keys)
        deleted.set()
        await resume.wait()  # the reply is still on its way back
        return reply

    redis.evalsha, redis.delete = evalsha, delete

    failing = True
    db["b"] = B1
    with pytest.raises(CacheUnavailable):
        await cache_a.apply_write(KEY, B1)
    reading = asyncio.create_task(cache_a.read(KEY))
    await deleted.wait()
    # Process B rebuilds from the database while A's next write fails.
    incarnation = await claim(cache_b)
    snapshot = list(db.values())
    db["a"] = A2
    with pytest.raises(CacheUnavailable):
        await cache_a.apply_write(KEY, A2)
    await completed(cache_b, KEY, incarnation, snapshot)
    resume.set()
    failing = False
    await reading

    # Quiet system: every write finished in DynamoDB and Redis is healthy again.
    for cache in (cache_a, cache_b):
        result = await cache.read(KEY)
        assert not isinstance(result, Hit) or result.figures.totals == totals_of(*db.values())


# ---------------------------------------------------------------------------
# Randomized interleavings against a reference database.

SESSION_IDS = ("s1", "s2", "s3", "s4")


@dataclasses.dataclass
class Rebuild:
    incarnation: str
    snapshot: list[StoredSession] | None = None


class Simulation:
    """One aggregate, a reference database and in-flight writes, stepped at random.

    A write commits to the database first and applies to Redis later (possibly
    twice, possibly after newer versions), as a request would. A rebuild claims,
    then queries, then completes, each at a separate step so writes, flushes and
    other rebuilds land in between.
    """

    def __init__(self, rng: random.Random, cache: AggregateCache, redis: Any, *, query_before_claim: bool) -> None:
        self.rng = rng
        self.cache = cache
        self.redis = redis
        self.query_before_claim = query_before_claim
        self.db: dict[str, StoredSession] = {}
        self.history: dict[tuple[str, int], SessionStats] = {}
        # Highest version per session whose write has completed (applied to Redis).
        self.completed: dict[str, int] = {}
        self.in_flight: list[StoredSession] = []
        self.rebuilds: list[Rebuild] = []
        self.earlier_view: list[StoredSession] = []
        self.violations: list[str] = []
        self.hits = 0

    def write(self) -> None:
        session_id = self.rng.choice(SESSION_IDS)
        previous = self.db.get(session_id)
        version = previous.version + 1 if previous else 1
        stats = SessionStats(
            session_id, self.rng.randint(0, 20), self.rng.randint(0, 10_000), self.rng.randint(0, 5_000)
        )
        self.db[session_id] = StoredSession(stats, version)
        self.history[session_id, version] = stats
        self.in_flight.append(self.db[session_id])

    async def deliver(self) -> None:
        if not self.in_flight:
            return
        index = self.rng.randrange(len(self.in_flight))
        session = self.in_flight[index]
        await self.cache.apply_write(KEY, session)
        # Sometimes the client retries later, so the same version applies again.
        if self.rng.random() < 0.8:
            self.in_flight.pop(index)
            sid = session.stats.session_id
            self.completed[sid] = max(self.completed.get(sid, 0), session.version)

    async def read(self) -> None:
        result = await self.cache.read(KEY)
        if isinstance(result, Hit):
            await self.check(result.figures.totals, "hit")
        elif isinstance(result, Claimed):
            snapshot = self.earlier_view if self.query_before_claim else None
            self.rebuilds.append(Rebuild(result.incarnation, snapshot))
        self.earlier_view = list(self.db.values())

    def query(self) -> None:
        waiting = [rebuild for rebuild in self.rebuilds if rebuild.snapshot is None]
        if waiting:
            self.rng.choice(waiting).snapshot = list(self.db.values())

    async def complete(self) -> None:
        ready = [rebuild for rebuild in self.rebuilds if rebuild.snapshot is not None]
        if not ready:
            return
        rebuild = self.rng.choice(ready)
        self.rebuilds.remove(rebuild)
        assert rebuild.snapshot is not None
        totals = await completed(self.cache, KEY, rebuild.incarnation, rebuild.snapshot)
        if totals is not None:
            await self.check(totals, "completion")

    async def check(self, totals: CourseTotals, source: str) -> None:
        """A served aggregate is the database's state, give or take writes still in flight."""
        self.hits += 1
        fields = await self.redis.hgetall(KEY)
        applied = {
            name.decode()[2:]: int(value.split(b":")[0]) for name, value in fields.items() if name.startswith(b"s:")
        }
        problems = [
            f"missing completed write {sid} v{version}"
            for sid, version in self.completed.items()
            if applied.get(sid, 0) < version
        ]
        problems += [
            f"unknown {sid} v{version}" for sid, version in applied.items() if (sid, version) not in self.history
        ]
        if not problems and totals != CourseTotals.of(self.history[item] for item in applied.items()):
            problems.append(f"sums {totals} disagree with the recorded contributions {applied}")
        if not self.in_flight and totals != CourseTotals.of(s.stats for s in self.db.values()):
            problems.append(f"quiet system served {totals}, database holds {self.db}")
        self.violations += [f"{source}: {problem}" for problem in problems]

    async def step(self) -> None:
        action = self.rng.choices(
            ["write", "deliver", "read", "query", "complete", "release", "flush", "evict"],
            weights=[3, 3, 3, 1.5, 2, 0.4, 0.5, 0.3],
        )[0]
        if action == "write":
            self.write()
        elif action == "deliver":
            await self.deliver()
        elif action == "read":
            await self.read()
        elif action == "query":
            self.query()
        elif action == "complete":
            await self.complete()
        elif action == "release":
            await self.cache.release(KEY)  # an abandoned rebuild, or one that gave up
        elif action == "flush":
            await self.redis.flushall()
        else:
            await self.redis.delete(KEY)

    async def settle(self) -> None:
        """Finish everything in flight, then one honest rebuild must serve the database exactly."""
        while self.in_flight:
            await self.deliver()
        for rebuild in self.rebuilds:
            if rebuild.snapshot is None:
                rebuild.snapshot = list(self.db.values())
        while self.rebuilds:
            await self.complete()
        await self.cache.release(KEY)
        result = await self.cache.read(KEY)
        if isinstance(result, Claimed):
            totals = await completed(self.cache, KEY, result.incarnation, list(self.db.values()))
            assert totals is not None
            await self.check(totals, "settled")
            return
        assert isinstance(result, Hit)
        await self.check(result.figures.totals, "settled")


async def simulate(seed: int, *, query_before_claim: bool = False, steps: int = 300) -> Simulation:
    redis = fakeredis.FakeAsyncRedis()
    simulation = Simulation(random.Random(seed), make_cache(redis), redis, query_before_claim=query_before_claim)
    for _ in range(steps):
        await simulation.step()
    await simulation.settle()
    await redis.aclose()
    return simulation


@pytest.mark.parametrize("seed", range(8))
async def test_random_interleavings_never_serve_a_wrong_aggregate(seed: int) -> None:
    simulation = await simulate(seed)
    assert simulation.violations == []
    assert simulation.hits > 10  # the check must have had something to look at


async def test_the_property_catches_a_rebuild_that_queries_before_claiming() -> None:
    # The same harness with the ordering rule broken must find a wrong aggregate,
    # otherwise the property above proves nothing.
    for seed in range(12):
        simulation = await simulate(seed, query_before_claim=True)
        if simulation.violations:
            assert any("missing completed write" in violation for violation in simulation.violations)
            return
    pytest.fail("no seed exposed the broken rebuild order")


async def test_a_tombstone_counts_nothing_and_keeps_its_version(cache: AggregateCache) -> None:
    await rebuild(cache, [A1, B1])
    await cache.apply_write(KEY, StoredSession(A1.stats, 2, deleted=True))
    assert await served(cache) == totals_of(B1)
    # A late write of the deleted session's older version cannot bring it back.
    await cache.apply_write(KEY, A1)
    assert await served(cache) == totals_of(B1)
    # Posting it again (the next version) counts it once more.
    await cache.apply_write(KEY, stored("a", 3, 1, 100, 1))
    assert await served(cache) == totals_of(stored("a", 3, 1, 100, 1), B1)


async def test_entries_with_a_session_are_counted(cache: AggregateCache) -> None:
    key = "stats:test:course"
    rows = [LearnerRow("u1", CourseTotals(2, 5, 400, 150, 9), 4), LearnerRow("u2", CourseTotals(), 2)]
    figures = await cache.complete(key, await claim(cache, key), rows)
    assert figures == CourseFigures(CourseTotals(2, 5, 400, 150, 9), 1)
    await cache.apply_change(key, LearnerRow("u2", CourseTotals(1, 1, 100, 100, 1), 3))
    await cache.apply_change(key, LearnerRow("u1", CourseTotals(1, 1, 50, 50, 0), 5))
    result = await cache.read(key)
    assert isinstance(result, Hit)
    assert result.figures == CourseFigures(CourseTotals(2, 2, 150, 150, 1), 2)
    await cache.apply_change(key, LearnerRow("u1", CourseTotals(), 6))  # every session deleted
    result = await cache.read(key)
    assert isinstance(result, Hit)
    assert result.figures == CourseFigures(CourseTotals(1, 1, 100, 100, 1), 1)


async def test_versions_compare_as_numbers_of_any_length(cache: AggregateCache) -> None:
    nine, ten = stored("a", 9, 1, 100, 1), stored("a", 10, 2, 200, 2)
    await rebuild(cache, [nine])
    await cache.apply_write(KEY, ten)  # "10" < "9" as text
    await cache.apply_write(KEY, nine)
    assert await served(cache) == totals_of(ten)
    key = "stats:test:course"
    revision = 1_764_000_000_000_000 * 10**9  # a roster revision: beyond a double's 53 bits
    await cache.complete(key, await claim(cache, key), [LearnerRow("u", CourseTotals(1, 1, 1, 1, 1), revision + 1)])
    await cache.apply_change(key, LearnerRow("u", CourseTotals(2, 2, 2, 2, 2), revision))
    await cache.apply_change(key, LearnerRow("u", CourseTotals(3, 3, 3, 3, 3), revision + 2))
    result = await cache.read(key)
    assert isinstance(result, Hit)
    assert result.figures.totals == CourseTotals(3, 3, 3, 3, 3)


TYPE_IDS = ("lab", "quiz", "video")


def with_results(session_id: str, version: int, *results: tuple[str, int, int]) -> StoredSession:
    stats = SessionStats(session_id, len(results), 5000, 100, results=tuple(ModuleResult(*r) for r in results))
    return StoredSession(stats, version)


async def served_by_type(cache: AggregateCache, key: str = KEY) -> CourseFigures:
    result = await cache.read(key, by_type=True)
    assert isinstance(result, Hit), result
    return result.figures


async def test_by_type_sums_move_with_each_newer_version_and_a_tombstone(redis: Any) -> None:
    cache = make_cache(redis, module_types=TYPE_IDS)
    a1 = with_results("a", 1, ("quiz", 8000, 10), ("quiz", 6000, 20), ("video", 9000, 5))
    b1 = with_results("b", 1, ("video", 5000, 7))
    figures = await cache.complete(KEY, await claim(cache), [a1, b1])
    assert figures == CourseFigures.of([a1, b1])
    assert figures is not None
    assert [kind.module_type for kind in figures.totals.by_type] == ["quiz", "video"]
    # The plain read leaves the by-type sums out; asked, they equal the entries'.
    assert (await served(cache)).by_type == ()
    a2 = with_results("a", 2, ("lab", 10000, 30))
    await cache.apply_write(KEY, a2)
    await cache.apply_write(KEY, a1)  # late, older: ignored
    assert await served_by_type(cache) == CourseFigures.of([a2, b1])
    await cache.apply_write(KEY, StoredSession(b1.stats, 2, deleted=True))
    assert await served_by_type(cache) == CourseFigures.of([a2])


async def test_a_course_counts_the_learners_who_studied_each_type(redis: Any) -> None:
    cache, key = make_cache(redis, module_types=TYPE_IDS), "stats:test:course"
    quiz, video = TypeTotals("quiz", 3, 30, 15000), TypeTotals("video", 1, 5, 9000)
    rows = [
        LearnerRow("u1", CourseTotals(2, 4, 1, 1, 35, (quiz, video)), 1),
        LearnerRow("u2", CourseTotals(1, 1, 1, 1, 30, (quiz,)), 1),
    ]
    await cache.complete(key, await claim(cache, key), rows)
    figures = await served_by_type(cache, key)
    assert figures.type_entries == (("quiz", 2), ("video", 1))
    assert figures.totals.by_type == (quiz + quiz, video)
    await cache.apply_change(key, LearnerRow("u1", CourseTotals(1, 1, 1, 1, 5, (video,)), 2))
    assert (await served_by_type(cache, key)).type_entries == (("quiz", 1), ("video", 1))


@pytest.mark.parametrize("seed", range(4))
async def test_by_type_sums_equal_the_latest_versions_in_any_order(redis: Any, seed: int) -> None:
    rng = random.Random(seed)
    cache = make_cache(redis, module_types=TYPE_IDS)
    await cache.complete(KEY, await claim(cache), [])
    versions: dict[str, list[StoredSession]] = {}
    for session_id in "abcdef":
        versions[session_id] = []
        for version in range(1, rng.randint(2, 6)):
            results = [(rng.choice(TYPE_IDS), rng.randint(0, 10_000), rng.randint(0, 10**6)) for _ in range(3)]
            kept = with_results(session_id, version, *results[: rng.randint(0, 3)])
            deleted = rng.random() < 0.2
            versions[session_id].append(StoredSession(kept.stats, version, deleted) if deleted else kept)
    applies = [entry for entries in versions.values() for entry in entries for _ in range(rng.randint(1, 2))]
    rng.shuffle(applies)
    for entry in applies:
        await cache.apply_write(KEY, entry)
    latest = [entries[-1] for entries in versions.values()]
    assert await served_by_type(cache) == CourseFigures.of(latest)


async def test_a_learners_points_count_the_courses_they_have_a_session_in(cache: AggregateCache) -> None:
    key = points_key("user-1")
    a, b = (
        CourseSession("course-a", stored("s1", 1, 2, 5000, 10, points=10)),
        CourseSession("course-b", stored("s2", 1, 1, 8000, 10, points=8)),
    )
    figures = await cache.complete(key, await claim(cache, key), [a, b])
    assert figures is not None
    assert (figures.groups, figures.totals.points) == (2, 18) == (CourseFigures.of([a, b]).groups, 18)
    second = CourseSession("course-a", stored("s3", 1, 1, 1000, 10, points=1))
    await cache.apply_write(key, second)
    served = await cache.read(key)
    assert isinstance(served, Hit)
    assert (served.figures.groups, served.figures.totals.points) == (2, 19)
    # The only session of course-b deleted: one course fewer; one of course-a's: still two there.
    await cache.apply_write(key, CourseSession("course-b", StoredSession(b.stored.stats, 2, deleted=True)))
    await cache.apply_write(key, CourseSession("course-a", StoredSession(a.stored.stats, 2, deleted=True)))
    served = await cache.read(key)
    assert isinstance(served, Hit)
    assert (served.figures.groups, served.figures.totals.points, served.figures.totals.sessions) == (1, 1, 1)
