"""The service on a real Redis Cluster: three primaries, each with a replica, made by
``redis-cli --cluster create``. Every route works with its keys spread over the
primaries, and the aggregates stay exact when, under load, the slots of every key
in use are migrated to another primary and then a primary is killed and its
replica takes over."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis, RedisCluster
from redis.crc import key_slot

from localmode.servers import MotoServer, free_port
from service import keys
from service.app import create_app
from service.redis.cache import aggregate_key, course_key, points_key
from tests.faults.conftest import create_table
from tests.faults.redis_nodes import LocalCluster
from tests.faults.support import Pair, Traffic, assert_settles_exact, metric_value, new_pairs, until
from tests.integration.support import Api, Backends, new_id, settings_for
from tests.integration.test_concurrency import assert_hash_consistent
from tests.integration.test_points import expected_points, points_of

pytestmark = pytest.mark.slow


Start = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def start(cluster: LocalCluster, moto_server: MotoServer) -> AsyncIterator[Start]:
    """Starts the service on the cluster, with settings overrides."""
    await create_table(moto_server.url)
    clients: list[TestClient[Any, Any]] = []

    async def started(**overrides: Any) -> TestClient[Any, Any]:
        settings = settings_for(cluster.url, moto_server.url, redis_cluster=True, **overrides)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
        clients.append(client)
        await client.start_server()
        return client

    yield started
    for client in clients:
        await client.close()


async def test_a_cluster_that_cannot_be_reached_is_served_around(moto_server: MotoServer) -> None:
    # redis-py's cluster errors are not all RedisErrors: none may stop the start-up or reach a client.
    await create_table(moto_server.url)
    settings = settings_for(f"redis://127.0.0.1:{free_port()}/0", moto_server.url, redis_cluster=True)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        api = Api(client)
        user, course = new_id(), new_id()
        assert (
            await api.post(user, course, {"totalModulesStudied": 2, "averageScore": 50, "timeStudied": 9})
        ).status == 201
        reply = await api.course(user, course)
        assert (reply.status, reply.json["sessionsCount"]) == (200, 1)
        assert metric_value(client, "fallback_reads") == 1
    finally:
        await client.close()


def redirections(client: TestClient[Any, Any], kind: str) -> float:
    return float(client.app[keys.METRICS].redis_redirections.labels(kind)._value.get())


def slots_of(pair: Pair) -> set[int]:
    """The slots of every key a pair's requests touch."""
    keys = (aggregate_key(pair.user, pair.course), course_key(pair.course), points_key(pair.user))
    return {key_slot(key.encode()) for key in keys}


async def test_every_route_works_with_the_keys_spread_over_the_primaries(
    start: Start, cluster: LocalCluster, backends: Backends
) -> None:
    client = await start(change_capture=True)  # a course's roster, behind its leaderboard, comes from the stream
    api = Api(client)
    pairs = new_pairs(4, 3)
    quiz = [{"moduleType": "quiz", "score": 80, "timeStudied": 100}] * 2
    for pair in pairs:
        for body in ({"sessionId": new_id(), "modules": quiz}, {"totalModulesStudied": 3, "averageScore": 50}):
            assert (await api.post(pair.user, pair.course, {"timeStudied": 1000, **body})).status == 201
    for pair in pairs:
        for _ in range(2):  # a rebuild, then a hit
            course = await api.course(pair.user, pair.course)
            assert (course.status, course.json["sessionsCount"]) == (200, 2)
        reply = await api.call("GET", f"/courses/{pair.course}/modules", user=pair.user)
        assert reply.json["items"][0]["modulesStudied"] == 2

        async def whole_board(course: str = pair.course, user: str = pair.user) -> bool:
            board = await api.call("GET", f"/courses/{course}/leaderboard", user=user)
            return bool(board.status == 200 and board.json["learnersCount"] == 4)

        await until(whole_board, within=10)
        points = await api.call("GET", "/points", user=pair.user)  # each pair's learner has one course
        assert points.json == {"points": course.json["points"], "coursesCount": 1}
    listed = await api.call("GET", f"/courses/{pairs[0].course}/sessions", user=pairs[0].user)
    gone = listed.json["items"][0]["sessionId"]
    assert (await api.call("DELETE", f"/courses/{pairs[0].course}/sessions/{gone}", user=pairs[0].user)).status == 204
    assert (await api.course(pairs[0].user, pairs[0].course)).json["sessionsCount"] == 1
    assert metric_value(client, "cache_hits") >= len(pairs)
    assert metric_value(client, "fallback_reads") == 0
    # Every primary holds some of the keys: the scripts really ran on all three.
    sizes = []
    for node in cluster.primaries():
        async with Redis(host="127.0.0.1", port=node.port) as direct:
            sizes.append(await direct.dbsize())
    assert len(sizes) == 3
    assert all(sizes), sizes


async def test_aggregates_stay_exact_through_slot_migrations_and_a_primary_failure_under_load(
    start: Start, cluster: LocalCluster, backends: Backends
) -> None:
    # Timeouts long enough for a loaded machine; the failure itself is what is being caused.
    client = await start(redis_timeout_seconds=1.0, request_deadline_seconds=10.0, change_capture=True)
    api = Api(client)
    pairs = new_pairs(3, 3)
    traffic = Traffic(api, pairs, seed=7, deadline=10.0)
    await traffic.warm_up()
    slots = sorted(set(itertools.chain.from_iterable(slots_of(pair) for pair in pairs)))
    hits_before = metric_value(client, "cache_hits")
    async with traffic.running(clients=4, max_requests=100_000):
        # Every slot in use moves to the next primary, key by key, while the traffic goes on.
        primaries = cluster.primaries()
        for slot in slots:
            source = cluster.primary_of(slot)
            target = primaries[(primaries.index(source) + 1) % len(primaries)]
            await asyncio.to_thread(cluster.migrate_slot, slot, target)
        hits_during_migrations = metric_value(client, "cache_hits") - hits_before
        moved = redirections(client, "moved")
        # Then the primary of the first pair's aggregate dies and its replica takes over.
        victim = cluster.primary_of(key_slot(aggregate_key(pairs[0].user, pairs[0].course).encode()))
        await asyncio.to_thread(cluster.kill_primary, victim)
        await asyncio.sleep(1.0)
    await traffic.retry_unanswered()
    assert traffic.unanswered == []
    assert traffic.problems() == []
    # Redis kept serving while the slots moved: redirections were followed, not failed.
    assert hits_during_migrations > 0
    assert moved > 0
    assert len(cluster.primaries()) == 3
    # Exact, not necessarily from Redis yet: after a primary is killed the circuit can stay open, or
    # open again, for longer than this waits (a liveness gap, not an exactness one; see the README).
    await assert_settles_exact(api, backends, pairs, within=20.0)
    # As the concurrency test checks: each learner's points, and every hash whole (its sums those of its
    # entries, a course's boards exactly its learners' points), read from the cluster itself.
    async with RedisCluster.from_url(cluster.url) as direct:
        whole = Backends(backends.store, backends.dynamodb, direct)
        for pair in pairs:
            assert await points_of(api, pair.user) == await expected_points(backends, pair.user, [pair.course])
            for key in (aggregate_key(pair.user, pair.course), points_key(pair.user), course_key(pair.course)):
                await assert_hash_consistent(whole, key)


async def test_a_course_whose_slot_is_being_migrated_is_answered_from_dynamodb_promptly(
    start: Start, cluster: LocalCluster
) -> None:
    # A course's scripts name its hash and every board a reader may name, most of which do not exist:
    # while the slot migrates, Redis answers them TRYAGAIN. That is not Redis failing.
    client = await start(change_capture=True)
    api = Api(client)
    pairs = new_pairs(2, 1)
    course = pairs[0].course
    for pair in pairs:
        body = {"totalModulesStudied": 2, "averageScore": 50, "timeStudied": 9}
        assert (await api.post(pair.user, course, body)).status == 201

    async def whole() -> bool:
        board = await api.call("GET", f"/courses/{course}/leaderboard", user=pairs[0].user)
        return bool(board.status == 200 and board.json["learnersCount"] == 2)

    await until(whole, within=10)
    slot = key_slot(course_key(course).encode())
    target = next(node for node in cluster.primaries() if node is not cluster.primary_of(slot))
    source = await asyncio.to_thread(cluster.begin_migration, slot, target)
    try:
        started = time.monotonic()
        board = await api.call("GET", f"/courses/{course}/leaderboard", user=pairs[0].user)
        assert (board.status, board.json["learnersCount"]) == (200, 2)
        assert time.monotonic() - started < 1.0
        assert redirections(client, "tryagain") > 0
        assert client.app[keys.CACHE].healthy, "a migration must not open the circuit"
    finally:
        await asyncio.to_thread(cluster.end_migration, slot, source, target)
    hits = metric_value(client, "cache_hits")
    assert (await api.call("GET", f"/courses/{course}/leaderboard", user=pairs[0].user)).status == 200
    assert metric_value(client, "cache_hits") == hits + 1
