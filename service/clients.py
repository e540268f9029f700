"""Clients for the two backends, configured to fail fast rather than hang."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aioboto3
from aiobotocore.config import AioConfig
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from service.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


@functools.cache
def _aws_session() -> aioboto3.Session:
    # One per process: a session caches botocore's service models, which are slow to load.
    return aioboto3.Session()


@contextlib.asynccontextmanager
async def dynamodb_client(settings: Settings) -> AsyncIterator[DynamoDBClient]:
    config = AioConfig(
        connect_timeout=settings.dynamodb_timeout_seconds,
        read_timeout=settings.dynamodb_timeout_seconds,
        # total_max_attempts counts the first attempt; botocore's max_attempts would not.
        retries={"mode": "standard", "total_max_attempts": settings.dynamodb_max_attempts},
        max_pool_connections=64,
    )
    credentials: dict[str, Any] = {}
    if settings.dynamodb_endpoint and settings.env != "production":
        # A local endpoint accepts any credentials; none need exist on the machine.
        credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    async with _aws_session().client(
        "dynamodb",
        region_name=settings.aws_region,
        endpoint_url=settings.dynamodb_endpoint,
        config=config,
        **credentials,
    ) as client:
        yield client


def redis_client(url: str, timeout_seconds: float) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        # Failing fast is the point: the breaker and the DynamoDB fallback handle outages.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
