"""Exact under the faults of SPEC §4, each caused for real: a late DynamoDB attempt,
a Redis failover to a replica that missed an update, a cancellation between the
DynamoDB write and the Redis update, and sessions that disappear from the table
behind the service's back."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from localmode.servers import RedisServer, free_port
from service.domain.model import SessionStats, StoredSession
from service.dynamodb import codec
from service.http.schemas import COURSE_STATS, TypeBreakdown
from service.redis.cache import aggregate_key
from tests.faults.conftest import Rig
from tests.faults.proxy import FaultProxy
from tests.faults.redis_nodes import TcpRedisServer
from tests.faults.support import until
from tests.integration.conftest import ROOT, wait_for_http
from tests.integration.support import TABLE, Api, new_id

pytestmark = pytest.mark.slow


def body(session: str, modules: int, score: float, time_ms: int) -> dict[str, Any]:
    return {"sessionId": session, "totalModulesStudied": modules, "averageScore": score, "timeStudied": time_ms}


async def served_equals_truth(api: Api, rig: Rig, user: str, course: str) -> bool:
    reply = await api.course(user, course)
    truth = await rig.backends.truth(user, course)
    if not truth.sessions:
        return reply.status == 404
    return reply.status == 200 and reply.json == COURSE_STATS.dump(truth)


async def test_a_late_attempt_never_replaces_a_newer_acknowledged_write(rig: Rig) -> None:
    # The first attempt of POST X is held in the network past the DynamoDB timeout;
    # botocore's retry stores X, POST Y is acknowledged, then the held attempt lands.
    client = await rig.start_app(
        rig.redis.url, rig.dynamodb_via_proxy, dynamodb_timeout_seconds=0.4, dynamodb_max_attempts=3
    )
    api = Api(client)
    user, course, session = new_id(), new_id(), new_id()
    x, y = body(session, 3, 50, 1000), body(session, 7, 90, 2000)
    stored_y = {**y, "averageScore": 90.0, "points": 63}  # 10 x 7 x 90 / 100
    rig.dynamodb_proxy.hold_next()
    first = await api.post(user, course, x)
    assert first.status == 201, first.json
    second = await api.post(user, course, y)
    completed = first.json["completedAt"]  # kept by a re-post without one
    assert (second.status, second.json) == (200, {**stored_y, "completedAt": completed})
    rig.dynamodb_proxy.release()
    await asyncio.wait_for(rig.dynamodb_proxy.held_finished.wait(), 10)

    assert (await api.session(user, course, session)).json == {**stored_y, "completedAt": completed}
    [item] = await rig.backends.items(user)
    assert codec.decode(item).stats == SessionStats(session, 7, 9000, 2000, points=63)
    assert await served_equals_truth(api, rig, user, course)


async def test_a_write_cancelled_between_dynamodb_and_redis_is_repaired_when_redis_answers(rig: Rig) -> None:
    # Redis stops answering (its process frozen: what was sent waits in its socket) while the request
    # deadline is shorter than its timeout, so the deadline cancels the request after DynamoDB took the
    # write, and the update reaches Redis after the request gave up on it.
    client = await rig.start_app(rig.redis.url, rig.moto.url, redis_timeout_seconds=3.0, request_deadline_seconds=0.6)
    api = Api(client)
    user, course = new_id(), new_id()
    assert (await api.post(user, course, body(new_id(), 2, 40, 100))).status == 201
    assert (await api.course(user, course)).json["sessionsCount"] == 1  # cached, complete
    rig.redis.pause()
    try:
        cut = await api.post(user, course, body(new_id(), 5, 80, 500))
    finally:
        rig.redis.resume()
    assert cut.status == 503  # the outcome was unknown to the client; the write did land
    assert (await rig.backends.truth(user, course)).sessions == 2
    # Repaired by the maintenance loop (every 0.5 s), far sooner than the max age (600 s).
    await until(lambda: served_equals_truth(api, rig, user, course), within=5)


async def test_a_rebuild_counts_only_what_the_table_holds_now(rig: Rig) -> None:
    # The table is emptied and refilled behind the service's back (as a restore to an
    # earlier point would): one session vanishes, one is re-created at version 1.
    client = await rig.start_app(rig.redis.url, rig.moto.url, cache_max_age_seconds=1)
    api = Api(client)
    user, course = new_id(), new_id()
    kept, vanished = new_id(), new_id()
    assert (await api.post(user, course, body(kept, 2, 40, 100))).status == 201
    assert (await api.post(user, course, body(kept, 3, 60, 300))).status == 200  # now version 2
    assert (await api.post(user, course, body(vanished, 5, 80, 500))).status == 201
    assert (await api.course(user, course)).json["sessionsCount"] == 2

    dynamodb = rig.backends.dynamodb
    for item in await rig.backends.items(user):
        await dynamodb.delete_item(
            TableName=TABLE, Key={key: item[key] for key in (codec.PARTITION_KEY, codec.SORT_KEY)}
        )
    recreated = StoredSession(SessionStats(kept, 9, 10_00, 900), version=1)
    await dynamodb.put_item(TableName=TABLE, Item=codec.encode(user, course, recreated))

    await asyncio.sleep(1.2)  # past the max age: the next read rebuilds
    reply = await api.course(user, course)
    # Put straight into the table without points: it earned none.
    expected = {"totalModulesStudied": 9, "averageScore": 10.0, "timeStudied": 900, "sessionsCount": 1, "points": 0}
    assert reply.json == expected
    assert await served_equals_truth(api, rig, user, course)


async def test_after_a_failover_no_aggregate_misses_a_write_the_old_primary_acknowledged(
    rig: Rig, tmp_path: Path
) -> None:
    # A primary and a replica whose replication link runs through a proxy; the
    # service reaches "the primary endpoint" through another proxy, which a failover
    # repoints at the promoted replica, as ElastiCache's DNS name is.
    with TcpRedisServer(tmp_path / "primary", "--repl-diskless-sync-delay", "0") as primary:
        upstream = ("127.0.0.1", primary.port)
        async with FaultProxy(upstream) as link, FaultProxy(upstream) as endpoint:
            replicaof = ("--replicaof", "127.0.0.1", str(link.port))
            with TcpRedisServer(tmp_path / "replica", *replicaof) as replica:
                direct = Redis.from_url(replica.url)
                try:
                    await failover_drill(rig, endpoint, link, replica, direct)
                finally:
                    await rig.close_apps()
                    await direct.aclose()


async def failover_drill(rig: Rig, endpoint: FaultProxy, link: FaultProxy, replica: RedisServer, direct: Redis) -> None:
    async def replicating() -> bool:
        return bool((await direct.info("replication")).get("master_link_status") == "up")

    await until(replicating, within=10)
    url = f"redis://{endpoint.address}/0"
    writer = Api(await rig.start_app(url, rig.moto.url))
    reader = Api(await rig.start_app(url, rig.moto.url))  # a task that writes nothing
    user, course = new_id(), new_id()
    assert (await writer.post(user, course, body(new_id(), 2, 40, 100))).status == 201
    for api in (writer, reader):
        assert (await api.course(user, course)).json["sessionsCount"] == 1
    key = aggregate_key(user, course)

    async def completion_replicated() -> bool:
        return bool(await direct.hget(key, "c") == b"1")

    await until(completion_replicated, within=5)
    link.blackhole()  # replication stops; the primary still acknowledges writes
    # Five module results (5 modules, mean 80, 500 ms): the by-type sums ride on the same entry.
    results = [{"moduleType": "quiz", "score": 80, "timeStudied": 100}] * 5
    assert (await writer.post(user, course, {"sessionId": new_id(), "modules": results})).status == 201

    await direct.replicaof("NO", "ONE")
    assert isinstance(replica, TcpRedisServer)
    endpoint.upstream = ("127.0.0.1", replica.port)
    endpoint.reset()
    endpoint.passthrough()
    truth = await rig.backends.truth(user, course)
    expected = COURSE_STATS.dump(truth)
    assert expected["sessionsCount"] == 2
    breakdown = {"items": [TypeBreakdown().dump(kind) for kind in truth.by_type]}
    assert [item["modulesStudied"] for item in breakdown["items"]] == [5]
    # Never served without the second session, by the task that wrote it or by another.
    for _ in range(10):
        for api in (writer, reader):
            reply = await api.course(user, course)
            assert (reply.status, reply.json) == (200, expected)
            reply = await api.call("GET", f"/courses/{course}/modules", user=user)
            assert (reply.status, reply.json) == (200, breakdown)
        await asyncio.sleep(0.05)


async def test_a_writer_killed_between_dynamodb_and_redis_is_repaired_from_the_table_stream(
    rig: Rig, tmp_path: Path
) -> None:
    # A scripts/run process writes with its Redis black-holed and is SIGKILLed after
    # DynamoDB took the write: no process is left that knows the aggregate is wrong.
    # Another task, reading the table's stream, applies the change.
    reader = Api(await rig.start_app(rig.redis.url, rig.moto.url, change_capture=True))
    port = free_port()
    env = {
        **os.environ,
        "STATS_ENV": "local",
        "STATS_PORT": str(port),
        "STATS_REDIS_URL": rig.redis_via_proxy,
        "STATS_DYNAMODB_ENDPOINT": rig.moto.url,
        "STATS_DYNAMODB_TABLE": TABLE,
        "STATS_CHANGE_CAPTURE": "false",
        "STATS_REDIS_TIMEOUT_SECONDS": "30",
        "STATS_REQUEST_DEADLINE_SECONDS": "60",
        "STATS_ACCESS_LOG": "false",
    }
    log_path = tmp_path / "writer.log"
    with log_path.open("wb") as log:
        writer = subprocess.Popen([str(ROOT / "scripts" / "run")], env=env, stdout=log, stderr=log)  # noqa: ASYNC220
    try:
        base = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_for_http, f"{base}/health", writer, log_path)
        async with aiohttp.ClientSession(base_url=base) as session:
            user, course = new_id(), new_id()
            writer_api = Api(session)
            assert (await writer_api.post(user, course, body(new_id(), 2, 40, 100))).status == 201
            assert (await reader.course(user, course)).json["sessionsCount"] == 1  # cached, complete
            rig.redis_proxy.blackhole()
            in_flight = asyncio.ensure_future(writer_api.post(user, course, body(new_id(), 5, 80, 500)))

            async def stored_in_dynamodb() -> bool:
                return (await rig.backends.truth(user, course)).sessions == 2

            await until(stored_in_dynamodb, within=10)
            writer.kill()
            writer.wait()
            in_flight.cancel()
            await asyncio.gather(in_flight, return_exceptions=True)
        await until(lambda: served_equals_truth(reader, rig, user, course), within=3)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
