"""SessionStore's concurrent reads end together: a failing partition stops the others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from service.domain.errors import DependencyUnavailable
from service.dynamodb import codec
from service.dynamodb.client import DynamoDB
from service.dynamodb.store import SessionStore


class OnePartitionFails:
    """A DynamoDB client whose Query of one roster partition fails while the others never answer."""

    def __init__(self, failing: str) -> None:
        self.failing = failing
        self.cancelled = 0

    async def query(self, **request: Any) -> dict[str, Any]:
        if request["ExpressionAttributeValues"][":p"]["S"] == self.failing:
            raise EndpointConnectionError(endpoint_url="http://dynamodb")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return {}


async def test_a_failing_partition_stops_the_other_reads_of_a_roster() -> None:
    client = OnePartitionFails(codec.roster_partition("course-1", 3))
    store = SessionStore(DynamoDB(client, client), "table")  # type: ignore[arg-type]
    with pytest.raises(DependencyUnavailable):
        await asyncio.wait_for(store.roster("course-1"), timeout=5)
    assert client.cancelled == codec.ROSTER_SHARDS - 1
    assert [task for task in asyncio.all_tasks() if "shard_rows" in repr(task)] == []
