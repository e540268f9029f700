"""A leaderboard of a course of many learners (SPEC §8): how long a lost board takes to come back
into Redis from the course's roster rows, in how many round trips, and how much memory it holds.

The rows are not written into DynamoDB: what the bench could time is its stand-in's Query, not
DynamoDB's (moto's server, the tests', takes over a minute a page at 100 000 rows). The Query pages a
rebuild reads are counted from the rows' sizes (one per started megabyte of each partition).
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bench.datagen import seeded_id
from bench.seed import PAGE_BYTES, item_bytes
from service.domain.model import Board, CourseTotals, LearnerRow, week_of
from service.domain.ports import Claimed
from service.dynamodb import codec
from service.redis.cache import REBUILD_CHUNK, AggregateCache, board_key, course_key

# The learners whose reads the scenario on the board cycles through: enough to spread over the ranking.
READERS = 1_000


@dataclass(frozen=True)
class BigBoard:
    course: str
    rows: list[LearnerRow]

    @classmethod
    def generate(cls, rng: random.Random, learners: int) -> BigBoard:
        """A course's learners, each with a few sessions' points, a third of them active this week."""
        week = week_of(time.time_ns() // 1_000_000)
        rows = []
        for _ in range(learners):
            sessions, points = rng.randint(1, 40), rng.randint(0, 4_000)
            weeks = ((week, rng.randint(0, points)),) if rng.random() < 1 / 3 else ()
            totals = CourseTotals(
                sessions, sessions * 5, sessions * 5 * 7_000, sessions * 7_000, sessions * 60_000, points=points
            )
            rows.append(LearnerRow(seeded_id(rng), totals, 1, weeks))
        return cls(seeded_id(rng), rows)

    @property
    def readers(self) -> list[tuple[str, str]]:
        return [(row.user_id, self.course) for row in self.rows[:READERS]]

    def items(self) -> list[dict[str, Any]]:
        return [{**codec.row_key(self.course, row.user_id), **codec.row_values(row)} for row in self.rows]

    def query_pages(self) -> int:
        """The rebuild's Query pages: one per started megabyte of each roster partition (an empty one too)."""
        shard_bytes: dict[int, int] = defaultdict(int)
        for row, item in zip(self.rows, self.items(), strict=True):
            shard_bytes[codec.roster_shard(row.user_id)] += item_bytes(item)
        return sum(max(1, math.ceil(shard_bytes[shard] / PAGE_BYTES)) for shard in range(codec.ROSTER_SHARDS))


async def _script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


async def rebuild(cache: AggregateCache, redis: Redis, board: BigBoard) -> dict[str, Any]:
    """A lost board rebuilt into Redis as a reader's miss does it, once the roster's rows are read: the
    claim, the rows applied in chunks and the board's read with the reader's place; the round trips and
    the memory."""
    await cache.forget(course_key(board.course))
    reader = board.rows[len(board.rows) // 2].user_id
    rows = board.rows
    calls_before = await _script_calls(redis)
    started = time.perf_counter()
    claim = await cache.read_board(board.course, None, (0, 10), reader, claim=True)
    if (
        not isinstance(claim, Claimed)
        or await cache.complete(course_key(board.course), claim.incarnation, rows) is None
    ):
        raise RuntimeError(f"the board of {len(board.rows)} learners could not be rebuilt: {claim}")
    answer = await cache.read_board(board.course, None, (0, 10), reader, claim=False)
    redis_seconds = time.perf_counter() - started
    calls = await _script_calls(redis) - calls_before
    learners = len(board.rows)
    if not isinstance(answer, Board) or answer.learners != learners or answer.you is None:
        raise RuntimeError(f"the board of {learners} learners, rebuilt: {answer}")
    week = week_of(time.time_ns() // 1_000_000)
    return {
        "learners": learners,
        "redis_ms": redis_seconds * 1000,
        "redis_calls": calls,
        "expected_redis_calls": 2 + math.ceil(learners / REBUILD_CHUNK),
        "dynamodb_queries": board.query_pages(),
        "board_bytes": await redis.memory_usage(board_key(board.course), samples=0),
        "weekly_board_bytes": await redis.memory_usage(board_key(board.course, week), samples=0),
        "weekly_learners": await redis.zcard(board_key(board.course, week)),
        "hash_bytes": await redis.memory_usage(course_key(board.course), samples=0),
    }
