"""Sessions written straight into DynamoDB with BatchWriteItem, encoded by the
store's own codec: far faster than posting them one by one through the API,
which matters for a user with 10 000 sessions.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bench.datagen import MODULE_TYPES, seeded_id
from service.domain.model import ModuleResult, SessionStats, StoredSession
from service.dynamodb.codec import PARTITION_KEY, SORT_KEY, encode

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# BatchWriteItem takes at most 25 items; a few batches in flight keep the server busy.
BATCH_ITEMS = 25
BATCHES_IN_FLIGHT = 4
# DynamoDB (and moto) end a Query page once it has read this much.
PAGE_BYTES = 1_000_000


def random_stats(rng: random.Random, session_id: str | None = None, *, results: int = 0) -> SessionStats:
    """A stored session's values (a new id from ``rng`` unless given), with that many module results."""
    session_id = session_id or seeded_id(rng)
    if not results:
        return SessionStats(session_id, rng.randint(0, 50), rng.randint(0, 10_000), rng.randint(0, 3_600_000))
    kept = tuple(
        ModuleResult(rng.choice(MODULE_TYPES), rng.randint(0, 10_000), rng.randint(0, 400_000)) for _ in range(results)
    )
    return SessionStats.of_results(session_id, kept)


def session_item(user: str, course: str, stats: SessionStats) -> dict[str, Any]:
    """One session as the store's first upsert of it leaves it."""
    return encode(user, course, StoredSession(stats, version=1))


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as the 1 MB page limit counts it: names plus values (numbers by their digits,
    binary by its bytes, a boolean generously as its name)."""
    return sum(len(name.encode()) + _value_bytes(next(iter(value.values()))) for name, value in item.items())


def _value_bytes(value: Any) -> int:
    return len(value) if isinstance(value, bytes) else len(str(value).encode())


def expected_pages(items: Sequence[dict[str, Any]]) -> int:
    """Query pages needed for ``items``: one per started megabyte."""
    return max(1, math.ceil(sum(item_bytes(item) for item in items) / PAGE_BYTES))


async def batch_write(client: DynamoDBClient, table: str, requests: Sequence[dict[str, Any]]) -> None:
    """BatchWriteItem ``requests`` (puts or deletes), retrying what comes back unprocessed."""
    limit = asyncio.Semaphore(BATCHES_IN_FLIGHT)

    async def write_batch(batch: list[Any]) -> None:
        async with limit:
            while batch:
                response = await client.batch_write_item(RequestItems={table: batch})
                batch = list(response.get("UnprocessedItems", {}).get(table, []))

    await asyncio.gather(
        *(write_batch(list(requests[start : start + BATCH_ITEMS])) for start in range(0, len(requests), BATCH_ITEMS))
    )


async def write_items(client: DynamoDBClient, table: str, items: Sequence[dict[str, Any]]) -> None:
    await batch_write(client, table, [{"PutRequest": {"Item": item}} for item in items])


async def delete_items(client: DynamoDBClient, table: str, items: Sequence[dict[str, Any]]) -> None:
    keys = [{PARTITION_KEY: item[PARTITION_KEY], SORT_KEY: item[SORT_KEY]} for item in items]
    await batch_write(client, table, [{"DeleteRequest": {"Key": key}} for key in keys])
