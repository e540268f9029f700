"""Integration fixtures: a real redis-server and moto's DynamoDB server over HTTP.

HTTP tests take the ``api`` fixture and run twice: against the application in
this process, and against a separate service process started by ``scripts/run``.
Tests isolate themselves with fresh user ids, so servers are shared per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from localmode import idp
from localmode.servers import MotoServer, RedisServer, free_port
from service import module_types
from service.accounts.cognito import create_admin
from service.app import create_app
from service.dynamodb.client import dynamodb, dynamodb_client
from service.dynamodb.store import SessionStore
from service.dynamodb.table import ensure_table
from service.settings import Settings
from tests.integration.support import TABLE, Api, Backends, settings_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def settings(redis_server: RedisServer, moto_server: MotoServer) -> Settings:
    """The test profile on the shared servers, with a user pool and its admin as local mode makes them."""
    plain = settings_for(redis_server.url, moto_server.url)

    async def create() -> Settings:
        async with dynamodb_client(plain) as client:
            await ensure_table(client, TABLE)
        with_pool = await idp.create_user_pool(plain, moto_server.url, name="learning-stats-test")
        await create_admin(with_pool, *idp.admin_credentials())
        return with_pool

    return asyncio.run(create())


@contextlib.contextmanager
def running_service(settings: Settings, log_dir: Path, **env: str) -> Iterator[str]:
    """The service as its own process, started the way the README says (``env`` on top); its base URL."""
    port = free_port()
    log_path = log_dir / "service.log"
    env = {
        **os.environ,
        "STATS_ENV": "local",
        "STATS_PORT": str(port),
        "STATS_REDIS_URL": settings.redis_url or "",
        "STATS_DYNAMODB_ENDPOINT": settings.dynamodb_endpoint or "",
        "STATS_DYNAMODB_TABLE": TABLE,
        "STATS_ACCESS_LOG": "false",
        **env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(ROOT / "scripts" / "run")], env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", process, log_path)
        yield base
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log_path.read_text()


@pytest.fixture(scope="session")
def service_process(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``scripts/run`` for the whole session, without change capture: reading the table's stream, it would
    recompute the roster rows of every later test's writes, a load on the one-at-a-time test DynamoDB
    that the concurrency tests' calls would queue behind past their timeouts."""
    with running_service(settings, tmp_path_factory.mktemp("service"), STATS_CHANGE_CAPTURE="false") as base:
        yield base


@pytest.fixture(scope="module")
def capturing_process(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``scripts/run`` as the README starts it, reading the table's stream (local mode does by default),
    for one module's tests."""
    with running_service(settings, tmp_path_factory.mktemp("capturing")) as base:
        yield base


def wait_for_http(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"service did not answer {url} within {timeout}s:\n{log_path.read_text()}")


@pytest.fixture(params=["in-process", "scripts/run"])
async def api(request: pytest.FixtureRequest, aiohttp_client: AiohttpClient, settings: Settings) -> AsyncIterator[Api]:
    if request.param == "in-process":
        yield Api(await aiohttp_client(create_app(settings)))
        return
    base = request.getfixturevalue("service_process")
    async with aiohttp.ClientSession(base_url=base) as session:
        yield Api(session)


@pytest.fixture(params=["in-process", "scripts/run"])
async def capturing(
    request: pytest.FixtureRequest, aiohttp_client: AiohttpClient, settings: Settings
) -> AsyncIterator[Api]:
    """The api fixture's two ways, both reading the table's stream (local mode does by default)."""
    if request.param == "in-process":
        yield Api(await aiohttp_client(create_app(dataclasses.replace(settings, change_capture=True))))
        return
    async with aiohttp.ClientSession(base_url=request.getfixturevalue("capturing_process")) as session:
        yield Api(session)


@pytest.fixture
def restore_module_types() -> Iterator[None]:
    """Module types are one catalogue per process (``create_app`` installs it): put back the shipped one."""
    shipped = module_types.current()
    yield
    module_types.install(shipped)


@pytest.fixture
async def app_client(aiohttp_client: AiohttpClient, settings: Settings) -> TestClient[Any, Any]:
    """The application in this process, for tests that look inside it."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def backends(settings: Settings) -> AsyncIterator[Backends]:
    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url)
    async with dynamodb(settings) as clients:
        yield Backends(SessionStore(clients, TABLE), clients.client, redis)
    await redis.aclose()
