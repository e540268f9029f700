"""The aioboto3 DynamoDB clients, and the retry counter of their calls."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from service.aws import aws_client
from service.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

_ATTEMPT = re.compile(r"\battempt=(\d+)")


@contextlib.asynccontextmanager
async def dynamodb_client(settings: Settings) -> AsyncIterator[DynamoDBClient]:
    async with aws_client(settings, "dynamodb", settings.dynamodb_endpoint) as client:
        yield client


@contextlib.asynccontextmanager
async def streams_client(settings: Settings) -> AsyncIterator[Any]:
    """The table's stream API, at the same endpoint (DynamoDB Local and moto serve both)."""
    async with aws_client(settings, "dynamodbstreams", settings.dynamodb_endpoint) as client:
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
