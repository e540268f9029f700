"""The aioboto3 DynamoDB client, configured to fail fast rather than hang."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aioboto3
from aiobotocore.config import AioConfig
from prometheus_client import Counter

from service.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

_ATTEMPT = re.compile(r"\battempt=(\d+)")


@functools.cache
def _aws_session() -> aioboto3.Session:
    # One per process: a session caches botocore's service models, which are slow to load.
    return aioboto3.Session()


@contextlib.asynccontextmanager
async def _aws_client(settings: Settings, service: str) -> AsyncIterator[Any]:
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
        service,
        region_name=settings.aws_region,
        endpoint_url=settings.dynamodb_endpoint,
        config=config,
        **credentials,
    ) as client:
        yield client


@contextlib.asynccontextmanager
async def dynamodb_client(settings: Settings) -> AsyncIterator[DynamoDBClient]:
    async with _aws_client(settings, "dynamodb") as client:
        yield client


@contextlib.asynccontextmanager
async def streams_client(settings: Settings) -> AsyncIterator[Any]:
    """The table's stream API, at the same endpoint (DynamoDB Local and moto serve both)."""
    async with _aws_client(settings, "dynamodbstreams") as client:
        yield client


def count_retries(client: DynamoDBClient, retries: Counter) -> None:
    """Count every retried attempt of ``client``'s calls in ``retries``."""

    def before_send(request: Any, **_: Any) -> None:
        # botocore numbers every attempt in this header; seen before each send,
        # so retries of calls that end in an error are counted too.
        header = request.headers.get("amz-sdk-request", "")
        attempt = _ATTEMPT.search(header.decode() if isinstance(header, bytes) else header)
        if attempt and attempt[1] != "1":
            retries.inc()

    client.meta.events.register("before-send.dynamodb", before_send)
