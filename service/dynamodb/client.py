"""The DynamoDB clients (aioboto3's, and the wire beside it for the hot calls), and the retry counter of their calls."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from service.aws import aws_client
from service.dynamodb.wire import DynamoWire
from service.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

_ATTEMPT = re.compile(r"\battempt=(\d+)")


@contextlib.asynccontextmanager
async def dynamodb_client(settings: Settings) -> AsyncIterator[DynamoDBClient]:
    async with aws_client(settings, "dynamodb", settings.dynamodb_endpoint) as client:
        yield client


@dataclass(frozen=True)
class DynamoDB:
    """The table's two clients: ``wire`` for UpdateItem, GetItem and Query, ``client`` for every other call."""

    client: DynamoDBClient
    wire: DynamoWire

    def observe_attempts(self, observer: Callable[[int], None]) -> None:
        """Call ``observer`` with the attempt's number (from 1) before every attempt either client sends."""
        self.wire.observe_attempts(observer)

        def before_send(request: Any, **_: Any) -> None:
            # botocore numbers every attempt in this header, retries of calls that end in an error too.
            header = request.headers.get("amz-sdk-request", "")
            attempt = _ATTEMPT.search(header.decode() if isinstance(header, bytes) else header)
            observer(int(attempt[1]) if attempt else 1)

        self.client.meta.events.register("before-send.dynamodb", before_send)


@contextlib.asynccontextmanager
async def dynamodb(settings: Settings) -> AsyncIterator[DynamoDB]:
    async with dynamodb_client(settings) as client, DynamoWire.open(settings, client) as wire:
        yield DynamoDB(client, wire)


@contextlib.asynccontextmanager
async def streams_client(settings: Settings) -> AsyncIterator[Any]:
    """The table's stream API, at the same endpoint (DynamoDB Local and moto serve both)."""
    async with aws_client(settings, "dynamodbstreams", settings.dynamodb_endpoint) as client:
        yield client


def count_retries(dynamodb: DynamoDB, retries: Counter) -> None:
    """Count every retried attempt of both clients' calls in ``retries``."""

    def on_attempt(attempt: int) -> None:
        if attempt > 1:
            retries.inc()

    dynamodb.observe_attempts(on_attempt)
