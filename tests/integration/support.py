"""Helpers shared by the integration tests: an HTTP client and a view of the backends."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from redis.asyncio import Redis

from service.domain.model import CourseTotals
from service.dynamodb.codec import PARTITION_KEY
from service.dynamodb.store import SessionStore
from service.redis.cache import aggregate_key
from service.settings import Settings, load_settings

TABLE = "learning-stats-test"


def settings_for(redis_url: str, dynamodb_endpoint: str, **overrides: Any) -> Settings:
    return load_settings(
        environ={"STATS_ENV": "test"},
        redis_url=redis_url,
        dynamodb_endpoint=dynamodb_endpoint,
        dynamodb_table=TABLE,
        **overrides,
    )


class Reply:
    def __init__(self, status: int, headers: CIMultiDict[str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class Api:
    """The service's HTTP API, whichever way the service runs."""

    def __init__(self, client: TestClient[Any, Any] | aiohttp.ClientSession) -> None:
        self._client = client

    async def call(
        self,
        method: str,
        path: str,
        *,
        user: str | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if user is not None:
            all_headers["X-User-Id"] = user
        kwargs: dict[str, Any] = {"headers": all_headers}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        async with self._client.request(method, path, **kwargs) as response:
            return Reply(response.status, CIMultiDict(response.headers), await response.read())

    async def post(self, user: str, course: str, body: Any) -> Reply:
        return await self.call("POST", f"/courses/{course}", user=user, json=body)

    async def course(self, user: str, course: str) -> Reply:
        return await self.call("GET", f"/courses/{course}", user=user)

    async def session(self, user: str, course: str, session: str) -> Reply:
        return await self.call("GET", f"/courses/{course}/sessions/{session}", user=user)


class Backends:
    """Direct access to what the service stored, to check it from outside."""

    def __init__(self, store: SessionStore, dynamodb: Any, redis: Redis) -> None:
        self.store = store
        self.dynamodb = dynamodb
        self.redis = redis

    async def items(self, user: str) -> list[dict[str, Any]]:
        response = await self.dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="#pk = :u",
            ExpressionAttributeNames={"#pk": PARTITION_KEY},
            ExpressionAttributeValues={":u": {"S": user}},
            ConsistentRead=True,
        )
        return list(response["Items"])

    async def cache_keys(self, user: str) -> list[bytes]:
        return [key async for key in self.redis.scan_iter(match=aggregate_key(user, "*"))]

    async def truth(self, user: str, course: str) -> CourseTotals:
        """The aggregate recomputed from DynamoDB, bypassing the service."""
        sessions = [stored.stats async for page in self.store.course_pages(user, course) for stored in page]
        return CourseTotals.of(sessions)

    async def assert_nothing_stored(self, user: str) -> None:
        assert await self.items(user) == []
        assert await self.cache_keys(user) == []


def new_id() -> str:
    return str(uuid.uuid4())
