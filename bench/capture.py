"""What change capture adds to each session write: ``ChangeApplier.apply`` on stream records.

In production the Lambda function reads the table's stream and hands each batch
of records to ``service.changes.applier.ChangeApplier``; this measures that call
alone, with the bench's real Redis and its DynamoDB stand-in, on records shaped
like DynamoDB Streams records (``NEW_AND_OLD_IMAGES``) of writes really made
through the store just before, so every roster recomputation reads the real
items. Batches are applied one after another, as the function applies one batch
per shard at a time. Two shapes of traffic:

- ``single``: every batch one record (a quiet stream: the function's batches hold
  what arrived since its last poll), each of another learner: every record pays
  for its learner's roster row;
- ``sync``: every batch one learner's ``BATCH_SESSIONS`` new sessions in one
  course (an offline sync through the batch route): one roster row per batch.

For each: this process's CPU time per record (the consumer's own cost: request
signing and parsing, the Redis client; the servers' time is theirs), wall time
per record, DynamoDB round trips per record (every HTTP request the client
sends, retries included), Redis calls per record (every command the redis-py
client sends and every script the cache runs on its script channel) and, by
name, the commands the Redis server ran for them (the scripts' own calls
included).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from bench.seed import item_bytes
from bench.stack import REGION, TABLE
from bench.traffic import BATCH_SESSIONS, new_session_id, post_values
from service.changes.applier import ChangeApplier
from service.domain.model import SessionStats, StoredSession, WriteOutcome
from service.domain.roster import Roster
from service.dynamodb import codec
from service.dynamodb.store import SessionStore
from service.redis.channel import ScriptChannel
from service.redis.client import open_cache
from service.settings import Settings

if TYPE_CHECKING:
    from service.dynamodb.client import DynamoDB

# The writes behind the records are made a few at a time, as a learner's app posts them.
WRITES_IN_FLIGHT = 4
# Thread field of the writes' session ids, apart from every scenario's.
THREAD = 0xFFFB
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:000000000000:table/{TABLE}/stream/bench"


class DynamoCalls:
    """Counts every request both DynamoDB clients send (each attempt of each call)."""

    def __init__(self, clients: DynamoDB) -> None:
        self.sent = 0
        clients.observe_attempts(self._count)

    def _count(self, _attempt: int) -> None:
        self.sent += 1


class RedisCalls:
    """Counts every command a redis-py client sends, and every script call on a script channel
    (``ScriptChannel``, which the cache runs its scripts on) while ``counting()``."""

    def __init__(self, redis: Redis) -> None:
        self.sent = 0
        execute: Callable[..., Awaitable[Any]] = redis.execute_command

        async def counted(*args: Any, **options: Any) -> Any:
            self.sent += 1
            return await execute(*args, **options)

        # An instance attribute: this client's calls go through it, no other's.
        redis.execute_command = counted  # type: ignore[method-assign]

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        # The channel is the cache's own, built inside it: counted on the class, for the while.
        original = ScriptChannel.run

        async def counted(channel: ScriptChannel, *args: Any, **options: Any) -> Any:
            self.sent += 1
            return await original(channel, *args, **options)

        ScriptChannel.run = counted  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            ScriptChannel.run = original  # type: ignore[method-assign]


async def redis_commands(redis: Redis) -> dict[str, int]:
    """Commands the Redis server has run, by name, but for the INFO calls that ask."""
    stats = await redis.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items() if name != "cmdstat_info"
    }


def stream_record(user_id: str, course_id: str, stored: StoredSession, created: bool, sequence: int) -> dict[str, Any]:
    """A record as DynamoDB Streams (and Lambda's event) carries an upsert's change."""
    item = codec.encode(user_id, course_id, stored)
    keys = {name: item[name] for name in (codec.PARTITION_KEY, codec.SORT_KEY)}
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": "INSERT" if created else "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": {
            "ApproximateCreationDateTime": int(time.time()),
            "Keys": keys,
            "NewImage": item,
            "SequenceNumber": f"{sequence:021d}",
            "SizeBytes": item_bytes(item),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": STREAM_ARN,
    }


async def write_records(
    store: SessionStore, writes: Sequence[tuple[str, str]], run_id: str, first: int
) -> list[dict[str, Any]]:
    """One new session per (user, course) of ``writes``, stored, and the stream record of each."""
    gate = asyncio.Semaphore(WRITES_IN_FLIGHT)

    async def one(n: int, user: str, course: str) -> dict[str, Any]:
        stats = SessionStats(new_session_id(run_id, THREAD, n), *post_values(n))
        async with gate:
            outcome, stored = await store.upsert(user, course, stats)
        return stream_record(user, course, stored, outcome is WriteOutcome.CREATED, n)

    return list(await asyncio.gather(*(one(first + i, user, course) for i, (user, course) in enumerate(writes))))


async def apply_batches(
    applier: ChangeApplier,
    batches: Sequence[Sequence[dict[str, Any]]],
    counters: tuple[DynamoCalls, RedisCalls],
    server: Redis,
) -> dict[str, Any]:
    """Apply ``batches`` in turn; the cost per record."""
    dynamodb, redis = counters
    records = sum(len(batch) for batch in batches)
    commands_before, sent_before, redis_before = await redis_commands(server), dynamodb.sent, redis.sent
    cpu_before, started = time.process_time(), time.perf_counter()
    for batch in batches:
        await applier.apply(batch)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    sent, after = dynamodb.sent - sent_before, await redis_commands(server)
    commands = {name: count - commands_before.get(name, 0) for name, count in after.items()}
    commands = {name: count for name, count in commands.items() if count}
    return {
        "batches": len(batches),
        "records": records,
        "records_per_batch": records / len(batches),
        "seconds": round(seconds, 3),
        "cpu_us_per_record": round(cpu / records * 1e6, 1),
        "wall_ms_per_record": round(seconds / records * 1000, 2),
        "dynamodb_calls_per_record": round(sent / records, 3),
        "redis_calls_per_record": round((redis.sent - redis_before) / records, 3),
        "redis_server_commands_per_record": round(sum(commands.values()) / records, 3),
        "redis_server_commands": commands,
    }


async def measure(
    settings: Settings,
    clients: DynamoDB,
    server: Redis,
    pairs: Sequence[tuple[str, str]],
    run_id: str,
    *,
    records: int,
) -> dict[str, Any]:
    """Both shapes, ``records`` records each (whole sync batches for ``sync``), over ``pairs``: the
    applier over ``clients`` and a cache built as the service builds its own from ``settings``, both
    counted; ``server`` is another client of the same Redis, which asks it for its own counts."""
    store = SessionStore(clients, TABLE)
    singles = await write_records(store, [pairs[n % len(pairs)] for n in range(records)], run_id, 0)
    syncs = max(1, records // BATCH_SESSIONS)
    sync_writes = [pairs[n % len(pairs)] for n in range(syncs) for _ in range(BATCH_SESSIONS)]
    synced = await write_records(store, sync_writes, run_id, records)
    sync_batches = [synced[start : start + BATCH_SESSIONS] for start in range(0, len(synced), BATCH_SESSIONS)]
    redis, cache = open_cache(settings)
    assert isinstance(redis, Redis), "the capture counts one node's commands"
    try:
        counters = DynamoCalls(clients), RedisCalls(redis)
        applier = ChangeApplier(cache, Roster(store, cache))
        # Connections, the failover check and the scripts' loading first: each happens once per client.
        await applier.apply(singles[:1])
        with counters[1].counting():
            return {
                "single": await apply_batches(applier, [[record] for record in singles], counters, server),
                "sync": await apply_batches(applier, sync_batches, counters, server),
            }
    finally:
        await cache.aclose()
        await redis.aclose()
