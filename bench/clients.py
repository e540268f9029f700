"""What the DynamoDB client costs per call: the wire (``service/dynamodb/wire.py``) against aioboto3.

The same ``SessionStore`` calls (a new session's ``UpdateItem``, a session's
``GetItem``, and the rebuild's paginated ``Query`` of a course's sessions) are
made through two stores over the bench's DynamoDB stand-in: the service's, and
one whose hot calls go through aioboto3 as they did before the wire. This
process's CPU time per call is measured for each, in the same run, on the
server's core, so the ratio is the client's own saving.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from bench.coldread import ColdCourse
from bench.datagen import seeded_id
from bench.seed import delete_items, random_stats, session_item
from bench.stack import TABLE
from service.dynamodb.client import DynamoDB
from service.dynamodb.store import SessionStore
from service.dynamodb.wire import DynamoWire

CONCURRENCY = 16
WRITES = 300
READS = 600
QUERIES = 5


async def _cpu_per_call(calls: int, operation: Callable[[int], Awaitable[object]]) -> float:
    """CPU µs of this process per call of ``operation``, ``CONCURRENCY`` at a time."""
    await operation(0)  # connections and credentials first, as a running service has them
    counter = itertools.count(1)

    async def worker() -> None:
        while (n := next(counter)) <= calls:
            await operation(n)

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (time.process_time() - started) / calls * 1e6


async def _measure(store: SessionStore, course: ColdCourse, rng: random.Random) -> tuple[dict[str, float], list[Any]]:
    user, place = seeded_id(rng), seeded_id(rng)
    written: list[Any] = []

    async def upsert(_: int) -> None:
        stats = random_stats(rng)
        await store.upsert(user, place, stats)
        written.append(session_item(user, place, stats))

    async def get(n: int) -> None:
        await store.get(course.user, course.course, course.stats[n % len(course.stats)].session_id)

    async def query(_: int) -> None:
        async for _page in store.course_pages(course.user, course.course):
            pass

    figures = {
        "UpdateItem": await _cpu_per_call(WRITES, upsert),
        "GetItem": await _cpu_per_call(READS, get),
        "Query_per_session": await _cpu_per_call(QUERIES, query) / len(course.stats),
    }
    return figures, written


async def compare(clients: DynamoDB, course: ColdCourse, seed: int) -> dict[str, Any]:
    """CPU µs per call through each client, and aioboto3's over the wire's; ``course`` is in the table."""
    # Both clients' hot calls through aioboto3: the store as it was before the wire.
    boto = SessionStore(DynamoDB(clients.client, cast(DynamoWire, clients.client)), TABLE)
    results: dict[str, Any] = {"sessions": len(course.stats), "concurrency": CONCURRENCY}
    leftovers: list[Any] = []
    for offset, (name, store) in enumerate((("aioboto3", boto), ("wire", SessionStore(clients, TABLE)))):
        results[name], written = await _measure(store, course, random.Random(seed + offset))
        leftovers.extend(written)
    # The writes leave the table, for the Query scenarios after them.
    await delete_items(clients.client, TABLE, leftovers)
    results["ratio"] = {call: results["aioboto3"][call] / results["wire"][call] for call in results["wire"]}
    return results
