"""The correctness invariant, exercised for real: concurrent writers, re-posts,
readers and Redis flushes across two service instances sharing Redis and DynamoDB.
Once quiet, every aggregate served must equal the one recomputed from DynamoDB."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from bench.datagen import Write, plan_writes
from service import keys
from service.app import create_app
from service.dynamodb import codec
from service.http.schemas import COURSE_STATS
from service.redis.cache import aggregate_key
from service.settings import Settings
from tests.faults.support import until
from tests.integration.support import TABLE, Api, Backends, new_id

pytestmark = pytest.mark.slow


async def two_instances(aiohttp_client: AiohttpClient, settings: Settings) -> list[TestClient[Any, Any]]:
    return [await aiohttp_client(create_app(settings)) for _ in range(2)]


@pytest.mark.parametrize("seed", [11, 22, 33, 44])
async def test_aggregates_stay_exact_under_concurrency_and_flushes(
    seed: int, aiohttp_client: AiohttpClient, settings: Settings, backends: Backends
) -> None:
    rng = random.Random(seed)
    clients = await two_instances(aiohttp_client, settings)
    apis = [Api(client) for client in clients]
    pairs = [(new_id(), new_id()) for _ in range(4)]
    writes = plan_writes(rng, pairs, 320)
    started: dict[tuple[str, str], set[str]] = {pair: set() for pair in pairs}
    limit = asyncio.Semaphore(48)

    async def write(item: Write) -> None:
        async with limit:
            await asyncio.sleep(rng.uniform(0, 0.01))
            started[item.user, item.course].add(item.session)
            reply = await rng.choice(apis).post(item.user, item.course, item.payload)
            assert reply.status in (200, 201), reply.body

    async def read(user: str, course: str) -> None:
        async with limit:
            await asyncio.sleep(rng.uniform(0, 0.5))
            before = len(started[user, course])
            reply = await rng.choice(apis).course(user, course)
            if reply.status == 404:
                return
            assert reply.status == 200, reply.body
            # A double-counted session would push the count past what was ever posted.
            assert reply.json["sessionsCount"] <= len(started[user, course]), (before, reply.json)

    async def flush() -> None:
        await asyncio.sleep(rng.uniform(0, 1.0))
        await backends.redis.flushdb()

    jobs = [write(item) for item in writes]
    jobs += [read(*rng.choice(pairs)) for _ in range(160)]
    jobs += [flush() for _ in range(6)]
    rng.shuffle(jobs)
    await asyncio.gather(*jobs)

    for user, course in pairs:
        truth = COURSE_STATS.dump(await backends.truth(user, course))
        assert truth["sessionsCount"] == len(started[user, course])
        for api in apis:
            reply = await api.course(user, course)
            assert reply.json == truth, (seed, user, course)
        await assert_hash_consistent(backends, user, course)


@pytest.mark.parametrize("seed", [5, 6])
async def test_aggregates_stay_exact_when_sessions_vanish_behind_the_service(
    seed: int, aiohttp_client: AiohttpClient, settings: Settings, backends: Backends
) -> None:
    # Sessions deleted from the table directly (no delete route yet), while the two
    # instances, which read the table's stream, keep taking new writes and reads and
    # Redis is flushed. Deleted sessions are never written again: re-creation after a
    # delete restarts an item's version, which the delete route of SPEC §6 must avoid.
    rng = random.Random(seed)
    capturing = dataclasses.replace(settings, change_capture=True)
    apis = [Api(await aiohttp_client(create_app(capturing))) for _ in range(2)]
    pairs = [(new_id(), new_id()) for _ in range(3)]
    first, later = plan_writes(rng, pairs, 90), plan_writes(rng, pairs, 90)
    limit = asyncio.Semaphore(32)

    async def write(item: Write) -> None:
        async with limit:
            await asyncio.sleep(rng.uniform(0, 0.3))
            reply = await rng.choice(apis).post(item.user, item.course, item.payload)
            assert reply.status in (200, 201), reply.body

    await asyncio.gather(*(write(item) for item in first))
    for pair in pairs:  # cached and complete before the deletes begin
        assert (await apis[0].course(*pair)).status == 200
    stored = [item for pair in pairs for item in await backends.items(pair[0])]
    doomed = rng.sample(stored, len(stored) // 3)

    async def delete(item: dict[str, Any]) -> None:
        await asyncio.sleep(rng.uniform(0, 0.5))
        key = {name: item[name] for name in (codec.PARTITION_KEY, codec.SORT_KEY)}
        await backends.dynamodb.delete_item(TableName=TABLE, Key=key)

    async def read(user: str, course: str) -> None:
        async with limit:
            await asyncio.sleep(rng.uniform(0, 0.6))
            reply = await rng.choice(apis).course(user, course)
            assert reply.status in (200, 404), reply.body

    async def flush() -> None:
        await asyncio.sleep(rng.uniform(0, 0.6))
        await backends.redis.flushdb()

    jobs = [write(item) for item in later] + [delete(item) for item in doomed]
    jobs += [read(*rng.choice(pairs)) for _ in range(60)] + [flush() for _ in range(2)]
    rng.shuffle(jobs)
    await asyncio.gather(*jobs)

    # Exact once the stream has been read past the last delete (it is polled every 0.2 s).
    await until(lambda: all_exact(apis, backends, pairs), within=5)
    for user, course in pairs:
        await assert_hash_consistent(backends, user, course)


async def all_exact(apis: list[Api], backends: Backends, pairs: list[tuple[str, str]]) -> bool:
    """Whether every instance serves every aggregate exactly as DynamoDB holds it now."""
    for user, course in pairs:
        truth = await backends.truth(user, course)
        expected = (200, COURSE_STATS.dump(truth)) if truth.sessions else (404, None)
        for api in apis:
            reply = await api.course(user, course)
            if (reply.status, reply.json if reply.status == 200 else None) != expected:
                return False
    return True


async def assert_hash_consistent(backends: Backends, user: str, course: str) -> None:
    """The cached sums equal the sums of the per-session contributions they sit beside."""
    raw: dict[bytes, bytes] = await backends.redis.hgetall(aggregate_key(user, course))  # type: ignore[assignment]
    fields = {key.decode(): value.decode() for key, value in raw.items()}
    contributions = [tuple(map(int, value.split(":")[1:])) for key, value in fields.items() if key.startswith("s:")]
    assert int(fields["n"]) == len(contributions)
    assert int(fields["m"]) == sum(m for m, _, _ in contributions)
    assert int(fields["w"]) == sum(m * s for m, s, _ in contributions)
    assert int(fields["ss"]) == sum(s for _, s, _ in contributions)
    assert int(fields["t"]) == sum(t for _, _, t in contributions)


@pytest.mark.parametrize("instances", [1, 2])
async def test_concurrent_cold_reads_cause_one_rebuild(
    instances: int, aiohttp_client: AiohttpClient, settings: Settings, backends: Backends
) -> None:
    clients = (await two_instances(aiohttp_client, settings))[:instances]
    user, course = new_id(), new_id()
    api = Api(clients[0])
    for score in range(20):
        await api.post(user, course, {"totalModulesStudied": 1, "averageScore": score, "timeStudied": 1})
    await backends.redis.flushdb()
    replies = await asyncio.gather(*(Api(clients[i % instances]).course(user, course) for i in range(100)))
    assert {reply.status for reply in replies} == {200}
    assert {reply.json["sessionsCount"] for reply in replies} == {20}
    rebuilds = sum(client.app[keys.METRICS].rebuilds._value.get() for client in clients)
    assert rebuilds == 1
