"""Traces of the service on a real Redis Cluster: the scripts on the channels to its primaries, and
redis-py's cluster client's commands, are client spans of their request."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpServer

from localmode.servers import MotoServer
from service.app import create_app
from tests.faults.conftest import create_table
from tests.faults.redis_nodes import LocalCluster
from tests.integration.otlp import attributes, otlp_receiver
from tests.integration.support import new_id, settings_for

pytestmark = pytest.mark.slow


async def test_a_cached_read_on_a_cluster_is_one_script_span(
    cluster: LocalCluster, moto_server: MotoServer, aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await otlp_receiver(aiohttp_server, monkeypatch)
    await create_table(moto_server.url)
    settings = settings_for(cluster.url, moto_server.url, redis_cluster=True)
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    user, course = new_id(), new_id()
    headers = {"X-User-Id": user}
    session = {"totalModulesStudied": 2, "averageScore": 90, "timeStudied": 1000}
    async with client.post(f"/courses/{course}", json=session, headers=headers) as response:
        assert response.status == 201
    for _ in ("a rebuild", "a hit"):
        async with client.get(f"/courses/{course}", headers=headers) as response:
            assert response.status == 200
    async with client.get("/ready") as response:
        assert response.status == 200
    await client.close()

    *_, hit = sorted(receiver.named("GET /courses/{courseId}"), key=lambda span: span.start_time_unix_nano)
    [script] = receiver.children(hit)
    assert script.name == "EVALSHA"
    assert attributes(script)["db.system"] == "redis"
    assert attributes(script)["server.address"] == "127.0.0.1"
    [ready] = receiver.named("GET /ready")
    [ping] = [span for span in receiver.children(ready) if span.name != "DynamoDB.DescribeTable"]
    assert ping.name == "PING"
    assert attributes(ping)["db.system"] == "redis"
