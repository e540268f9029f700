"""Cold aggregate reads: rebuild time against session count, and stampede control.

Counts come from the service's own ``/metrics`` (rebuilds and the time the
rebuild's DynamoDB query took), timings also from the client's side.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from redis.asyncio import Redis

from bench.datagen import seeded_id
from bench.measure import metric_samples
from bench.seed import delete_items, expected_pages, item_bytes, random_stats, session_item, write_items
from bench.stack import CpuClock, Gunicorn
from service.domain.model import CourseTotals
from service.dynamodb.store import SessionStore
from service.http.schemas import COURSE_STATS, TypeBreakdown
from service.redis.cache import aggregate_key

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

BREAKDOWN = TypeBreakdown()
REBUILDS = "stats_cache_rebuilds_total"
REBUILD_SECONDS = "stats_cache_rebuild_duration_seconds_sum"


async def scrape(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with http.get(f"{base}/metrics") as response:
        return metric_samples(await response.text())


async def read_course(
    http: aiohttp.ClientSession, base: str, user: str, course: str, view: str = ""
) -> tuple[int, Any]:
    """The learner's aggregate, or with ``view="/modules"`` their breakdown by module type."""
    return await read_as(http, base, user, f"/courses/{course}{view}")


async def read_points(http: aiohttp.ClientSession, base: str, user: str) -> tuple[int, Any]:
    return await read_as(http, base, user, "/points")


async def read_as(http: aiohttp.ClientSession, base: str, user: str, path: str) -> tuple[int, Any]:
    """A learner's read, as a trusted gateway names them."""
    async with http.get(f"{base}{path}", headers={"X-User-Id": user}) as response:
        return response.status, await response.json()


async def _health(http: aiohttp.ClientSession, base: str) -> None:
    async with http.get(f"{base}/health") as response:
        await response.read()


class ColdCourse:
    """One user's course with ``sessions`` sessions (of ``results`` module results each), written
    straight into DynamoDB; read as its aggregate, or with ``breakdown`` as its breakdown by type."""

    def __init__(self, rng: random.Random, sessions: int, *, results: int = 0, breakdown: bool = False) -> None:
        self.user, self.course = seeded_id(rng), seeded_id(rng)
        self.stats = [random_stats(rng, results=results) for _ in range(sessions)]
        self.items = [session_item(self.user, self.course, stats) for stats in self.stats]
        totals = CourseTotals.of(self.stats)
        self.view = "/modules" if breakdown else ""
        if breakdown:
            self.expected: Any = {"items": [BREAKDOWN.dump(kind) for kind in totals.by_type]}
        else:
            self.expected = COURSE_STATS.dump(totals)

    @property
    def key(self) -> str:
        return aggregate_key(self.user, self.course)

    async def write(self, client: DynamoDBClient, table: str) -> None:
        await write_items(client, table, self.items)

    async def delete(self, client: DynamoDBClient, table: str) -> None:
        await delete_items(client, table, self.items)


async def query_pages(store: SessionStore, course: ColdCourse) -> tuple[int, float]:
    """Pages and seconds of the rebuild's own paginated Query, called directly."""
    started = time.perf_counter()
    pages = 0
    async for _ in store.course_pages(course.user, course.course):
        pages += 1
    return pages, time.perf_counter() - started


async def rebuild_point(
    http: aiohttp.ClientSession,
    server: Gunicorn,
    redis: Redis,
    store: SessionStore,
    course: ColdCourse,
    *,
    repeats: int,
) -> dict[str, Any]:
    """Median cold-read and rebuild times for one course, each read after deleting its aggregate, and
    the server's CPU time per read (over all the reads: /proc counts in clock ticks)."""
    pages, query_seconds = await query_pages(store, course)
    base, pid = server.url, server.worker_pid()
    client_seconds: list[float] = []
    server_seconds: list[float] = []
    cpu = 0.0
    for _ in range(repeats):
        await redis.delete(course.key)
        before = await scrape(http, base)
        clock = CpuClock(pid)
        started = time.perf_counter()
        status, body = await read_course(http, base, course.user, course.course, course.view)
        client_seconds.append(time.perf_counter() - started)
        cpu += clock.seconds() or 0.0
        after = await scrape(http, base)
        rebuilds = after[REBUILDS] - before[REBUILDS]
        if status != 200 or body != course.expected or rebuilds != 1:
            raise RuntimeError(f"cold read of {len(course.stats)} sessions: {status} {body}, {rebuilds} rebuilds")
        server_seconds.append(after[REBUILD_SECONDS] - before[REBUILD_SECONDS])
    return {
        "sessions": len(course.stats),
        "item_bytes": sum(item_bytes(item) for item in course.items),
        "pages": pages,
        "expected_pages": expected_pages(course.items),
        "query_ms": query_seconds * 1000,
        "rebuild_ms": statistics.median(server_seconds) * 1000,
        "cold_read_ms": statistics.median(client_seconds) * 1000,
        "rebuild_cpu_ms": cpu / repeats * 1000,
    }


def linear_fit(points: Sequence[dict[str, Any]], y: str = "rebuild_ms") -> dict[str, float]:
    """Least squares ``y = intercept + slope * sessions`` and its R²."""
    xs = [float(point["sessions"]) for point in points]
    ys = [float(point[y]) for point in points]
    if len(xs) < 2:
        return {"slope_ms": 0.0, "intercept_ms": ys[0] if ys else 0.0, "r2": 1.0}
    slope, intercept = statistics.linear_regression(xs, ys)
    mean = statistics.fmean(ys)
    total = sum((value - mean) ** 2 for value in ys)
    residual = sum((value - (intercept + slope * x)) ** 2 for x, value in zip(xs, ys, strict=True))
    return {"slope_ms": slope, "intercept_ms": intercept, "r2": 1 - residual / total if total else 1.0}


async def stampede(base: str, redis: Redis, course: ColdCourse, readers: int) -> dict[str, Any]:
    """``readers`` concurrent reads of one cold aggregate; how many rebuilds they caused."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=readers)) as http:
        # Open every connection first, so that the reads start together.
        await asyncio.gather(*(_health(http, base) for _ in range(readers)))
        await redis.delete(course.key)
        before = await scrape(http, base)
        started = time.perf_counter()
        replies = await asyncio.gather(*(read_course(http, base, course.user, course.course) for _ in range(readers)))
        elapsed = time.perf_counter() - started
        after = await scrape(http, base)
    return {
        "readers": readers,
        "sessions": len(course.stats),
        "rebuilds": int(after[REBUILDS] - before[REBUILDS]),
        "correct_replies": sum(1 for status, body in replies if status == 200 and body == course.expected),
        "seconds": elapsed,
    }
