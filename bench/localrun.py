"""A local run for the dashboard: the service in local mode under a mixed load, scraped every second.

The service runs as in its container (gunicorn, one worker) with the local profile, against a
real ``redis-server`` and moto's DynamoDB-compatible server started as child processes. Learners
post sessions and read their aggregates and sessions; some reads name courses nobody studied
(404) and some posts are invalid (400). Part way through, Redis is flushed (every aggregate is
rebuilt from DynamoDB on its next read); later it is frozen for a few seconds (reads fall back to
DynamoDB, the circuit opens, the updates Redis missed are repaired after), and then DynamoDB is
frozen (cached reads go on; writes wait, are retried, and past the request deadline answer 503). The
load is an open loop at a fixed rate, as many independent clients make it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bench.promql import Scrape
from bench.stack import SERVICE_APP, Cores, Gunicorn
from localmode.servers import ChildServer, MotoServer, RedisServer, free_port

SCRAPE_SECONDS = 1.0
_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True)
class Plan:
    seconds: float
    rate: float = 40.0
    learners: int = 12
    courses_per_learner: int = 3
    seed: int = 13

    @property
    def flush_at(self) -> float:
        return 0.3 * self.seconds

    @property
    def redis_pause_at(self) -> float:
        return 0.5 * self.seconds

    @property
    def redis_pause_seconds(self) -> float:
        return max(2.0, self.seconds / 20)

    @property
    def dynamodb_pause_at(self) -> float:
        return 0.72 * self.seconds

    @property
    def dynamodb_pause_seconds(self) -> float:
        # Past the request deadline (5 s) in a full run, so writes answer 503 and the 5xx panel shows them.
        return min(7.0, max(2.0, 0.12 * self.seconds))


@dataclass
class Run:
    plan: Plan
    scrapes: list[Scrape] = field(default_factory=list)
    # (seconds since the load started, what happened)
    events: list[tuple[float, str]] = field(default_factory=list)
    # Responses by status; 0 counts the requests that got no response (connection error or client timeout).
    statuses: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class Servers:
    redis: RedisServer
    dynamodb: MotoServer


@contextlib.contextmanager
def local_service(work: Path) -> Iterator[tuple[str, Servers]]:
    """The service's URL and the servers it depends on, until the block ends."""
    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(RedisServer(work))
        moto = stack.enter_context(MotoServer())
        env = {
            "STATS_ENV": "local",
            "STATS_HOST": "127.0.0.1",
            "STATS_PORT": str(free_port()),
            "STATS_REDIS_URL": redis_server.url,
            "STATS_DYNAMODB_ENDPOINT": moto.url,
            "STATS_WORKERS": "1",
            "STATS_ACCESS_LOG": "false",
        }
        service = Gunicorn(SERVICE_APP, env, work / "service.log", Cores(None, None))
        stack.callback(service.stop)
        service.start()
        service.wait_ready()
        yield service.url, Servers(redis_server, moto)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _session(rng: random.Random) -> dict[str, object]:
    return {
        "sessionId": _uuid(rng),
        "totalModulesStudied": rng.randint(1, 20),
        "averageScore": round(rng.uniform(40, 100), 1),
        "timeStudied": rng.randint(60_000, 3_600_000),
    }


class Learners:
    """The learners, their courses and sessions, and one request at a time in the mix."""

    def __init__(self, http: aiohttp.ClientSession, base: str, plan: Plan) -> None:
        self._http, self._base = http, base
        self._rng = random.Random(plan.seed)
        courses = [_uuid(self._rng) for _ in range(plan.courses_per_learner * 2)]
        self._sessions: dict[tuple[str, str], list[str]] = {
            (_uuid(self._rng), course): []
            for _ in range(plan.learners)
            for course in self._rng.sample(courses, plan.courses_per_learner)
        }
        self._pairs = list(self._sessions)

    async def _call(self, method: str, path: str, user: str, body: object = None) -> int:
        async with self._http.request(
            method, self._base + path, json=body, headers={"X-User-Id": user}, timeout=_TIMEOUT
        ) as response:
            await response.read()
            return response.status

    async def post(self, pair: tuple[str, str]) -> int:
        body = _session(self._rng)
        status = await self._call("POST", f"/courses/{pair[1]}", pair[0], body)
        if status in (200, 201):
            self._sessions[pair].append(str(body["sessionId"]))
        return status

    async def seed(self) -> None:
        """A session for every pair, then each aggregate read once: the load starts on a warm cache."""
        await asyncio.gather(*(self.post(pair) for pair in self._pairs))
        await asyncio.gather(*(self._call("GET", f"/courses/{course}", user) for user, course in self._pairs))
        await asyncio.gather(*(self._call("GET", "/points", user) for user in {user for user, _ in self._pairs}))

    async def one(self) -> int:
        """One request of the mix: mostly cached reads, then writes, session reads, 404s and 400s."""
        user, course = pair = self._rng.choice(self._pairs)
        roll = self._rng.random()
        if roll < 0.5:
            return await self._call("GET", f"/courses/{course}", user)
        if roll < 0.65:
            return await self.post(pair)
        if roll < 0.75 and self._sessions[pair]:
            return await self._call("GET", f"/courses/{course}/sessions/{self._sessions[pair][-1]}", user)
        if roll < 0.85:
            return await self._call("GET", "/points", user)
        if roll < 0.9:
            return await self._call("GET", f"/courses/{_uuid(self._rng)}", user)
        return await self._call("POST", f"/courses/{course}", user, {**_session(self._rng), "averageScore": 500})


async def _every(interval: float, seconds: float, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Start ``work()`` every ``interval`` seconds for ``seconds``, whether or not earlier ones have finished
    (an open loop: a slow dependency does not slow the load), then wait for them all."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    started: list[asyncio.Task[None]] = []
    for tick in itertools.count():
        due = start + tick * interval
        if due >= start + seconds:
            break
        await asyncio.sleep(max(0.0, due - loop.time()))
        started.append(asyncio.create_task(work()))
    await asyncio.gather(*started)


@contextlib.asynccontextmanager
async def _paused(server: ChildServer, what: str, run: Run, start: float) -> AsyncIterator[None]:
    server.pause()
    run.events.append((time.monotonic() - start, f"{what} paused"))
    try:
        yield
    finally:
        server.resume()
        run.events.append((time.monotonic() - start, f"{what} resumed"))


async def _disturb(run: Run, servers: Servers, start: float) -> None:
    """Flush Redis, then freeze it a while, then DynamoDB, at the plan's moments."""
    plan = run.plan

    async def until(moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - (time.monotonic() - start)))

    await until(plan.flush_at)
    redis = Redis.from_url(servers.redis.url)
    try:
        await redis.flushall()
    finally:
        await redis.aclose()
    run.events.append((time.monotonic() - start, "Redis flushed"))
    await until(plan.redis_pause_at)
    async with _paused(servers.redis, "Redis", run, start):
        await asyncio.sleep(plan.redis_pause_seconds)
    await until(plan.dynamodb_pause_at)
    async with _paused(servers.dynamodb, "DynamoDB", run, start):
        await asyncio.sleep(plan.dynamodb_pause_seconds)


async def drive(base: str, servers: Servers, plan: Plan) -> Run:
    """``plan``'s load against the service at ``base``, with a scrape of /metrics every second."""
    run = Run(plan)
    # No cap on open connections: requests waiting on a frozen dependency must not hold up the others.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        learners = Learners(http, base, plan)
        await learners.seed()
        start = time.monotonic()

        async def request() -> None:
            try:
                run.statuses[await learners.one()] += 1
            except (aiohttp.ClientError, TimeoutError):
                run.statuses[0] += 1

        async def scrape() -> None:
            async with http.get(f"{base}/metrics", timeout=_TIMEOUT) as response:
                run.scrapes.append(Scrape.parse(time.monotonic() - start, await response.text()))

        await asyncio.gather(
            _disturb(run, servers, start),
            # One scrape past the load's end, so the last second's requests are counted.
            _every(SCRAPE_SECONDS, plan.seconds + SCRAPE_SECONDS, scrape),
            _every(1 / plan.rate, plan.seconds, request),
        )
    # A slow scrape may finish after the next one.
    run.scrapes.sort(key=lambda scrape: scrape.time)
    return run
