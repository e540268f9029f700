"""The multiplexed Redis channel of the aggregate read, against real redis-server processes
that are restarted, paused and password-protected."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fakeredis
import pytest
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from localmode.servers import RedisServer, free_port
from service.domain.errors import CacheUnavailable
from service.domain.model import Board, CourseFigures, SessionStats, StoredSession
from service.domain.ports import Claimed, Hit
from service.redis.breaker import CircuitBreaker
from service.redis.cache import AggregateCache, aggregate_key
from service.redis.channel import ScriptChannel
from service.redis.client import redis_client

ECHO = "return {KEYS[1], ARGV[1]}"
TIMEOUT = 0.25


class PasswordRedisServer(RedisServer):
    def command(self) -> list[str]:
        return [*super().command(), "--requirepass", "s3cret"]

    def is_ready(self) -> bool:
        return self.socket_path.exists()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, free to be paused and restarted."""
    with RedisServer(tmp_path) as server:
        assert isinstance(server, RedisServer)
        yield server


async def loaded(url: str, script: str = ECHO) -> tuple[Redis, ScriptChannel, AsyncScript]:
    redis = redis_client(url, TIMEOUT)
    channel = ScriptChannel.for_client(redis)
    assert channel is not None
    return redis, channel, redis.register_script(script)


@pytest.fixture
async def echo(own_redis: RedisServer) -> AsyncIterator[tuple[ScriptChannel, AsyncScript]]:
    redis, channel, script = await loaded(own_redis.url)
    yield channel, script
    await channel.aclose()
    await redis.aclose()


async def test_calls_made_together_each_get_their_own_reply(echo: tuple[ScriptChannel, AsyncScript]) -> None:
    channel, script = echo
    replies = await asyncio.gather(*(channel.run(script, [f"key-{n}"], [n]) for n in range(500)))
    assert replies == [[f"key-{n}".encode(), str(n).encode()] for n in range(500)]


async def test_a_script_redis_does_not_hold_is_loaded_and_run(
    own_redis: RedisServer, echo: tuple[ScriptChannel, AsyncScript]
) -> None:
    channel, script = echo
    assert await channel.run(script, ["key"], [1]) == [b"key", b"1"]
    direct = Redis.from_url(own_redis.url)
    assert await direct.script_exists(script.sha) == [True]
    await direct.script_flush()
    assert await channel.run(script, ["key"], [2]) == [b"key", b"2"]
    await direct.aclose()


async def test_a_restart_fails_the_calls_in_flight_then_reconnects(
    own_redis: RedisServer, echo: tuple[ScriptChannel, AsyncScript]
) -> None:
    channel, script = echo
    assert await channel.run(script, ["key"], [1]) == [b"key", b"1"]
    own_redis.kill()
    with pytest.raises((RedisConnectionError, RedisTimeoutError)):
        await channel.run(script, ["key"], [2])
    own_redis.start()
    # A new server has no scripts yet: the channel loads the script again.
    assert await channel.run(script, ["key"], [3]) == [b"key", b"3"]


async def test_a_server_that_stops_answering_times_out(
    own_redis: RedisServer, echo: tuple[ScriptChannel, AsyncScript]
) -> None:
    channel, script = echo
    assert await channel.run(script, ["key"], [1]) == [b"key", b"1"]
    own_redis.pause()
    try:
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await channel.run(script, ["key"], [2])
        assert time.monotonic() - started < TIMEOUT * 3
    finally:
        own_redis.resume()
    assert await channel.run(script, ["key"], [3]) == [b"key", b"3"]


async def test_a_call_given_up_before_its_reply_leaves_the_calls_beside_it_their_own_replies(
    own_redis: RedisServer, echo: tuple[ScriptChannel, AsyncScript]
) -> None:
    channel, script = echo
    assert await channel.run(script, ["key"], [1]) == [b"key", b"1"]
    own_redis.pause()
    try:
        before = asyncio.ensure_future(channel.run(script, ["key"], [2]))
        given_up = asyncio.ensure_future(channel.run(script, ["key"], [3]))
        after = asyncio.ensure_future(channel.run(script, ["key"], [4]))
        await asyncio.sleep(0.05)
        given_up.cancel()
        await asyncio.sleep(0.05)
    finally:
        own_redis.resume()
    # Its reply keeps its place and is dropped: the others get theirs, on the same connection.
    assert await before == [b"key", b"2"]
    assert await after == [b"key", b"4"]
    assert given_up.cancelled()
    assert await channel.run(script, ["key"], [5]) == [b"key", b"5"]


async def test_password_and_database_come_from_the_url(tmp_path: Path) -> None:
    with PasswordRedisServer(tmp_path):
        url = f"unix://:s3cret@{tmp_path / 'redis.sock'}?db=3"
        redis, channel, script = await loaded(url, "return redis.call('INCR', KEYS[1])")
        try:
            assert await channel.run(script, ["counter"], []) == 1
            assert await redis.get("counter") == b"1"  # the client's own database 3
            wrong = ScriptChannel.for_client(redis_client(f"unix://:wrong@{tmp_path / 'redis.sock'}", TIMEOUT))
            assert wrong is not None
            with pytest.raises(RedisConnectionError):
                await wrong.run(script, ["counter"], [])
            await wrong.aclose()
        finally:
            await channel.aclose()
            await redis.aclose()


def test_options_the_channel_does_not_understand_leave_reads_to_redis_py() -> None:
    assert ScriptChannel.for_client(fakeredis.FakeAsyncRedis()) is None
    assert ScriptChannel.for_client(redis_client("rediss://cache.internal:6380?ssl_cert_reqs=none", TIMEOUT)) is None
    assert ScriptChannel.for_client(redis_client("rediss://user:pw@cache.internal:6380/0", TIMEOUT)) is not None


async def test_the_cache_reloads_its_scripts_after_redis_lost_them(own_redis: RedisServer) -> None:
    redis = redis_client(own_redis.url, TIMEOUT)
    cache = AggregateCache(
        redis, ttl_seconds=60, max_age_seconds=60, lock_seconds=5, breaker=CircuitBreaker(failure_threshold=1_000)
    )
    key = aggregate_key("user", "course")
    session = StoredSession(SessionStats("s1", 3, 5000, 60_000), version=1)
    try:
        first = await cache.read(key)
        assert isinstance(first, Claimed)
        assert await cache.complete(key, first.incarnation, []) is not None
        await redis.script_flush()
        # A write's update on the channel meets NOSCRIPT, so nothing ran: it is applied once, through redis-py.
        await cache.apply_write(key, session)
        await cache.apply_write(key, session)  # the same version again changes nothing
        await redis.script_flush()
        hit = await cache.read(key)
        assert isinstance(hit, Hit)
        assert hit.figures == CourseFigures.of([session])
        assert cache.stale_count == 0
        own_redis.restart()
        # Both connections died with the server; the first read may still see that.
        with contextlib.suppress(CacheUnavailable):
            await cache.read(key)
        assert isinstance(await cache.read(key), Claimed)  # a fresh server: rebuilt, as after any flush
    finally:
        await cache.aclose()
        await redis.aclose()


async def test_a_url_the_channel_cannot_serve_is_logged_once_and_its_reads_counted(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # client_name is a valid redis-py option that the lean channel does not implement.
    redis = redis_client(f"{own_redis.url}?client_name=stats", TIMEOUT)
    registry = CollectorRegistry()
    slow_reads = Counter("slow_reads", "reads through redis-py", registry=registry)
    with caplog.at_level(logging.WARNING, logger="service.redis.cache"):
        cache = AggregateCache(
            redis, ttl_seconds=60, max_age_seconds=60, lock_seconds=5, breaker=CircuitBreaker(), slow_reads=slow_reads
        )
    try:
        [warning] = [record for record in caplog.records if record.name == "service.redis.cache"]
        assert "client_name" in warning.reason  # type: ignore[attr-defined]
        key = aggregate_key("user", "course")
        first = await cache.read(key)
        assert isinstance(first, Claimed)
        assert await cache.complete(key, first.incarnation, []) is not None
        assert isinstance(await cache.read(key), Hit)
        assert registry.get_sample_value("slow_reads_total") == 2
        assert len([record for record in caplog.records if record.name == "service.redis.cache"]) == 1
    finally:
        await cache.aclose()
        await redis.aclose()


async def new_history(admin: Redis) -> None:
    """The node demoted and taken back, its data unchanged: what a failover and a failback leave."""
    before = (await admin.info("replication"))["master_replid"]
    await admin.replicaof("127.0.0.1", str(free_port()))
    await admin.replicaof("NO", "ONE")
    assert (await admin.info("replication"))["master_replid"] != before


@pytest.fixture
async def on_own_redis(own_redis: RedisServer) -> AsyncIterator[tuple[AggregateCache, Redis]]:
    """A cache on the test's own redis-server, and a plain client of that server."""
    redis = redis_client(own_redis.url, TIMEOUT)
    admin = Redis.from_url(own_redis.url)
    cache = AggregateCache(
        redis, ttl_seconds=60, max_age_seconds=60, lock_seconds=5, breaker=CircuitBreaker(failure_threshold=1_000)
    )
    yield cache, admin
    await cache.aclose()
    await admin.aclose()
    await redis.aclose()


async def test_a_rebuild_claimed_before_the_primary_changed_is_not_completed(
    on_own_redis: tuple[AggregateCache, Redis],
) -> None:
    # A node promoted between a claim and its completion may lack updates the claimer's hash took.
    cache, admin = on_own_redis
    key = aggregate_key("user", "course")
    claimed = await cache.read(key)
    assert isinstance(claimed, Claimed)
    await new_history(admin)
    await cache.release(key)
    assert await cache.complete(key, claimed.incarnation, []) is None
    again = await cache.read(key)
    assert isinstance(again, Claimed)
    assert await cache.complete(key, again.incarnation, []) is not None
    assert isinstance(await cache.read(key), Hit)


async def test_a_hash_completed_before_its_primary_was_demoted_and_taken_back_is_rebuilt(
    on_own_redis: tuple[AggregateCache, Redis],
) -> None:
    cache, admin = on_own_redis
    key = aggregate_key("user", "course")
    claimed = await cache.read(key)
    assert isinstance(claimed, Claimed)
    assert await cache.complete(key, claimed.incarnation, []) is not None
    assert isinstance(await cache.read(key), Hit)
    # Demoted, as a failed-over primary is; the cache's connection stays open.
    await admin.replicaof("127.0.0.1", str(free_port()))
    with pytest.raises(CacheUnavailable):
        await cache.read(key)  # a read renews the hash's TTL: a write, which a replica refuses
    # Taken back: the same node and data, a new history, in which that completion was not made.
    await admin.replicaof("NO", "ONE")
    assert await admin.hget(key, "c") == b"1"
    assert isinstance(await cache.read(key), Claimed)


async def test_a_course_board_completed_before_its_primary_changed_history_is_rebuilt(
    on_own_redis: tuple[AggregateCache, Redis],
) -> None:
    cache, admin = on_own_redis
    claimed = await cache.read_board("course", None, (0, 10), None, claim=True)
    assert isinstance(claimed, Claimed)
    assert await cache.complete(cache.course_key("course"), claimed.incarnation, []) is not None
    assert isinstance(await cache.read_board("course", None, (0, 10), None, claim=True), Board)
    await new_history(admin)
    assert isinstance(await cache.read_board("course", None, (0, 10), None, claim=True), Claimed)
