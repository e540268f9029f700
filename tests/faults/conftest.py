"""Failure-test fixtures: every test gets its own redis-server and moto server, so
killing, pausing or restarting them never disturbs another test. (Tests that
never touch DynamoDB may share one moto server through ``shared_moto_server``.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from localmode.servers import MotoServer, RedisServer
from service.app import create_app
from service.dynamodb.client import dynamodb, dynamodb_client
from service.dynamodb.store import SessionStore
from service.dynamodb.table import ensure_table
from tests.faults.proxy import FaultProxy
from tests.faults.redis_nodes import LocalCluster
from tests.integration.support import TABLE, Backends, settings_for


async def create_table(endpoint: str) -> None:
    async with dynamodb_client(settings_for("redis://unused", endpoint)) as client:
        await ensure_table(client, TABLE)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A Redis Cluster of three primaries, each with a replica (tests/faults/redis_nodes.py)."""
    with LocalCluster(tmp_path / "cluster") as cluster:
        yield cluster


@pytest.fixture
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def shared_moto_server() -> Iterator[MotoServer]:
    """For tests that never fault DynamoDB: they override ``moto_server`` with this one."""
    with MotoServer() as server:
        yield server


@pytest.fixture
async def backends(redis_server: RedisServer, moto_server: MotoServer) -> AsyncIterator[Backends]:
    """Direct connections to both servers, never through a proxy: the view of the truth."""
    await create_table(moto_server.url)
    redis = Redis.from_url(redis_server.url)
    async with dynamodb(settings_for(redis_server.url, moto_server.url)) as clients:
        yield Backends(SessionStore(clients, TABLE), clients.client, redis)
    await redis.aclose()


class Rig:
    """One test's own servers, a fault proxy in front of each, direct access to both,
    and the applications it started."""

    def __init__(
        self,
        redis: RedisServer,
        moto: MotoServer,
        redis_proxy: FaultProxy,
        dynamodb_proxy: FaultProxy,
        backends: Backends,
    ) -> None:
        self.redis = redis
        self.moto = moto
        self.redis_proxy = redis_proxy
        self.dynamodb_proxy = dynamodb_proxy
        self.backends = backends
        self._clients: list[TestClient[Any, Any]] = []

    @property
    def redis_via_proxy(self) -> str:
        return f"redis://{self.redis_proxy.address}/0"

    @property
    def dynamodb_via_proxy(self) -> str:
        return f"http://{self.dynamodb_proxy.address}"

    async def start_app(self, redis_url: str, dynamodb_endpoint: str, **overrides: Any) -> TestClient[Any, Any]:
        """The application on the given endpoints, with settings overrides."""
        app = create_app(settings_for(redis_url, dynamodb_endpoint, **overrides))
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        self._clients.append(client)
        await client.start_server()
        return client

    async def close_apps(self) -> None:
        for client in self._clients:
            await client.close()


@pytest.fixture
async def rig(redis_server: RedisServer, moto_server: MotoServer, backends: Backends) -> AsyncIterator[Rig]:
    async with (
        FaultProxy(redis_server.socket_path) as redis_proxy,
        FaultProxy(("127.0.0.1", moto_server.port)) as dynamodb_proxy,
    ):
        rig = Rig(redis_server, moto_server, redis_proxy, dynamodb_proxy, backends)
        try:
            yield rig
        finally:
            # Applications first: they hold connections through the proxies.
            await rig.close_apps()
