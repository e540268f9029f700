"""The production change-capture function, fed real stream records in Lambda's event shape."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service.changes import lambda_handler
from service.domain.model import SessionStats
from service.dynamodb import codec
from service.dynamodb.client import streams_client
from service.settings import Settings
from tests.integration.support import TABLE, Api, Backends, new_id


@pytest.fixture
def lambda_environment(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    assert settings.redis_url is not None
    monkeypatch.setenv("STATS_ENV", "test")
    monkeypatch.setenv("STATS_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("STATS_DYNAMODB_TABLE", TABLE)
    monkeypatch.setenv("STATS_DYNAMODB_ENDPOINT", settings.dynamodb_endpoint or "")
    lambda_handler._runtime.cache_clear()
    yield
    # Lambda never tears its environment down; a test process must not leak its connections.
    runtime = lambda_handler._runtime()
    runtime.loop.run_until_complete(runtime.cache.aclose())
    runtime.loop.run_until_complete(runtime.redis.aclose())
    runtime.loop.run_until_complete(runtime.clients.aclose())
    runtime.loop.close()
    lambda_handler._runtime.cache_clear()


async def stream_end(settings: Settings, backends: Backends) -> tuple[str, list[str]]:
    """The table's stream, and an iterator at the end of each of its shards: reading from there
    sees only what comes next, however much the session's other tests wrote before."""
    description = await backends.dynamodb.describe_table(TableName=TABLE)
    arn = description["Table"]["LatestStreamArn"]
    async with streams_client(settings) as streams:
        shards = (await streams.describe_stream(StreamArn=arn))["StreamDescription"]["Shards"]
        iterators = [
            (await streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"))[
                "ShardIterator"
            ]
            for shard in shards
        ]
    return arn, iterators


async def stream_records(settings: Settings, start: tuple[str, list[str]], user: str) -> list[dict[str, Any]]:
    """This user's records in the table's stream since ``start``, as Lambda would deliver them."""
    arn, iterators = start
    found: list[dict[str, Any]] = []
    async with streams_client(settings) as streams:
        for first in iterators:
            iterator: str | None = first
            while iterator:
                reply = await streams.get_records(ShardIterator=iterator, Limit=1000)
                found += [r for r in reply["Records"] if r["dynamodb"]["Keys"][codec.PARTITION_KEY]["S"] == user]
                iterator = reply.get("NextShardIterator") if reply["Records"] else None
    return [{**record, "eventSource": "aws:dynamodb", "eventSourceARN": arn} for record in found]


@pytest.mark.usefixtures("lambda_environment")
async def test_a_write_whose_update_never_reached_redis_is_applied_by_the_function(
    app_client: TestClient[Any, Any], settings: Settings, backends: Backends
) -> None:
    api = Api(app_client)
    user, course = new_id(), new_id()
    start = await stream_end(settings, backends)
    first = {"totalModulesStudied": 2, "averageScore": 40, "timeStudied": 100}
    assert (await api.post(user, course, first)).status == 201
    assert (await api.course(user, course)).json["sessionsCount"] == 1  # cached, complete
    # Another task's write whose own Redis update was lost: DynamoDB only.
    await backends.store.upsert(user, course, SessionStats(new_id(), 5, 8000, 500))
    assert (await api.course(user, course)).json["sessionsCount"] == 1

    event = {"Records": await stream_records(settings, start, user)}
    assert len(event["Records"]) >= 2
    result = await asyncio.to_thread(lambda_handler.handler, event, None)
    assert result == {"applied": len(event["Records"])}
    truth = await backends.truth(user, course)
    reply = await api.course(user, course)
    assert reply.json["sessionsCount"] == truth.sessions == 2
    rows = await backends.store.roster(course)
    assert [(row.user_id, row.totals) for row in rows] == [(user, truth)]
    # Delivered again (at least once): nothing changes.
    await asyncio.to_thread(lambda_handler.handler, event, None)
    assert (await api.course(user, course)).json == reply.json
    again = await backends.store.roster(course)
    assert [(row.user_id, row.totals) for row in again] == [(user, truth)]
