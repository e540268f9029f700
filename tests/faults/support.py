"""Shared by the failure tests: a traffic generator that records what clients saw,
the "settle, then compare every aggregate with DynamoDB" check, and metric reading."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from bench.measure import metric_samples, percentile
from service import keys
from service.domain.model import CourseTotals
from service.http.schemas import COURSE_STATS
from tests.integration.support import Api, Backends, Reply, new_id

# Something that causes or clears a fault: a plain call or a coroutine function.
Action = Callable[[], Awaitable[object] | object]

# Traffic before a fault starts and after it is removed, in seconds.
LEAD_SECONDS = 0.3
TAIL_SECONDS = 0.3


@dataclass(frozen=True)
class Pair:
    user: str
    course: str


@dataclass(frozen=True)
class Sample:
    kind: str  # post, repost, course, session
    status: int
    started: float  # time.monotonic() when sent
    seconds: float
    problem: str | None = None  # what is wrong with the answer, if anything


def new_pairs(users: int, courses: int) -> list[Pair]:
    course_ids = [new_id() for _ in range(courses)]
    return [Pair(new_id(), course) for _ in range(users) for course in course_ids]


def summarize(samples: list[Sample]) -> str:
    statuses = Counter(sample.status for sample in samples)
    counts = " ".join(f"{status}x{count}" for status, count in sorted(statuses.items()))
    p99 = percentile(sorted(sample.seconds for sample in samples), 99)
    return f"{len(samples)} requests [{counts}] p99 {p99:.3f}s max {max((s.seconds for s in samples), default=0):.3f}s"


def envelope_problem(reply: Reply, *, deadline: float, seconds: float) -> str | None:
    """Why a non-2xx answer breaks the error contract, or None if it keeps it."""
    if 200 <= reply.status < 300:
        return None
    if b"Traceback" in reply.body:
        return f"{reply.status} leaks a stack trace"
    try:
        code = orjson.loads(reply.body)["error"]["code"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"{reply.status} without the JSON error envelope: {reply.body[:200]!r}"
    problem = None
    if reply.status == 503:
        if code != "service_unavailable":
            problem = f"503 with code {code!r}"
        elif not reply.headers.get("Retry-After", "").isdigit():
            problem = "503 without a numeric Retry-After"
        elif seconds > deadline + 0.5:
            problem = f"503 after {seconds:.2f}s, past the {deadline}s deadline"
    return problem


async def _answered(call: Callable[[], Awaitable[Reply]], attempts: int = 4) -> Reply:
    """A call retried after its 503s, as a client would: before any fault, a 503 only says that the machine
    was too busy for a drill's short dependency timeouts."""
    for _ in range(attempts - 1):
        reply = await call()
        if reply.status != 503:
            return reply
        await asyncio.sleep(int(reply.headers.get("Retry-After", "1")))
    return await call()


class Traffic:
    """A few concurrent clients posting, re-posting and reading for a fixed set of pairs.

    Every answer is recorded. The generator keeps what it needs to judge answers:
    which sessions were ever sent (an aggregate counting more was double counted),
    which were acknowledged (a GET of one must not 404), and which POSTs got a 503
    (a client would retry them later).
    """

    def __init__(self, api: Api, pairs: list[Pair], *, seed: int, deadline: float, sessions_per_pair: int = 4) -> None:
        self.api = api
        self.pairs = pairs
        self.deadline = deadline
        self._rng = random.Random(seed)
        self._sessions = {pair: [new_id() for _ in range(sessions_per_pair)] for pair in pairs}
        self.samples: list[Sample] = []
        self.sent: dict[Pair, set[str]] = {pair: set() for pair in pairs}
        self.acknowledged: dict[Pair, set[str]] = {pair: set() for pair in pairs}
        self.unanswered: list[tuple[Pair, dict[str, Any]]] = []
        self._history: list[tuple[Pair, dict[str, Any]]] = []

    def _payload(self, session: str) -> dict[str, Any]:
        rng = self._rng
        return {
            "sessionId": session,
            "totalModulesStudied": rng.choice([0, rng.randint(1, 10_000)]),
            "averageScore": round(rng.uniform(0, 100), rng.choice([0, 1, 2, 3])),
            "timeStudied": rng.randint(0, 86_400_000),
        }

    async def _timed(
        self, kind: str, call: Awaitable[Reply], problem: Callable[[Reply], str | None] | None = None
    ) -> Reply:
        started = time.monotonic()
        reply = await call
        seconds = time.monotonic() - started
        found = envelope_problem(reply, deadline=self.deadline, seconds=seconds) or (problem and problem(reply))
        self.samples.append(Sample(kind, reply.status, started, seconds, found or None))
        return reply

    async def post(self, pair: Pair, payload: dict[str, Any], kind: str = "post") -> Reply:
        self.sent[pair].add(payload["sessionId"])
        self._history.append((pair, payload))
        reply = await self._timed(kind, self.api.post(pair.user, pair.course, payload))
        if reply.status in (200, 201):
            self.acknowledged[pair].add(payload["sessionId"])
        elif reply.status == 503:
            self.unanswered.append((pair, payload))
        return reply

    async def read_course(self, pair: Pair) -> Reply:
        def double_counted(reply: Reply) -> str | None:
            # More sessions than were ever posted can only come from counting one twice.
            if reply.status == 200 and reply.json["sessionsCount"] > len(self.sent[pair]):
                return f"double count: {reply.json['sessionsCount']} sessions, {len(self.sent[pair])} posted"
            return None

        return await self._timed("course", self.api.course(pair.user, pair.course), double_counted)

    async def read_session(self, pair: Pair) -> Reply | None:
        known = sorted(self.acknowledged[pair])
        if not known:
            return None
        return await self._timed("session", self.api.session(pair.user, pair.course, self._rng.choice(known)))

    async def warm_up(self) -> None:
        """Every pair gets sessions and a complete aggregate in Redis before any fault."""
        for pair in self.pairs:
            for session in self._sessions[pair][:2]:
                posted = await _answered(functools.partial(self.post, pair, self._payload(session)))
                assert posted.status in (200, 201)
            assert (await _answered(functools.partial(self.read_course, pair))).status == 200
        # Every warm-up write was acknowledged in the end: none is left for the retries after a fault.
        self.unanswered.clear()

    async def _one(self) -> None:
        rng = self._rng
        pair = rng.choice(self.pairs)
        roll = rng.random()
        if roll < 0.35:
            await self.post(pair, self._payload(rng.choice(self._sessions[pair])))
        elif roll < 0.45 and self._history:
            # A client retry: exactly a request already sent.
            await self.post(*rng.choice(self._history), kind="repost")
        elif roll < 0.85:
            await self.read_course(pair)
        else:
            await self.read_session(pair)

    async def _client(self, stop: asyncio.Event, budget: list[int]) -> None:
        while not stop.is_set() and budget[0] > 0:
            budget[0] -= 1
            await self._one()
            # Pace the clients: the machine is small and shared.
            await asyncio.sleep(self._rng.uniform(0.005, 0.02))

    @contextlib.asynccontextmanager
    async def running(self, clients: int = 4, max_requests: int = 3000) -> AsyncIterator[None]:
        """Traffic flows for the body of the ``async with``, then drains."""
        stop = asyncio.Event()
        budget = [max_requests]
        tasks = [asyncio.create_task(self._client(stop, budget)) for _ in range(clients)]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    async def retry_unanswered(self, attempts: int = 4) -> list[int]:
        """What a client does after a 503: send the same request again, after Retry-After, a few times
        (the first retries meet a dependency that is still catching up with what queued during the fault)."""
        pending, self.unanswered = self.unanswered, []
        statuses = []
        for pair, payload in pending:
            for attempt in range(attempts):
                reply = await self.post(pair, payload, kind="repost")
                if reply.status != 503 or attempt == attempts - 1:
                    break
                await asyncio.sleep(int(reply.headers.get("Retry-After", "1")))
            statuses.append(reply.status)
        self.unanswered = [item for item, status in zip(pending, statuses, strict=True) if status == 503]
        return statuses

    def during(self, start: float, end: float) -> list[Sample]:
        """Requests sent and answered while the fault lasted (not the ones it released)."""
        return [s for s in self.samples if start <= s.started and s.started + s.seconds <= end]

    def problems(self) -> list[str]:
        return [f"{s.kind} {s.status}: {s.problem}" for s in self.samples if s.problem]


async def assert_settles_exact(
    api: Api,
    backends: Backends,
    pairs: Iterable[Pair],
    *,
    within: float = 8.0,
    client: TestClient[Any, Any] | None = None,
) -> None:
    """Once quiet, every aggregate served equals the one recomputed from DynamoDB.

    Polls until all agree (repair and breaker recovery take a moment), then reads
    them all once more. With ``client``, that last round must be served from
    Redis: a stale cached aggregate cannot hide behind DynamoDB fallbacks.
    """
    pairs = list(pairs)
    deadline = time.monotonic() + within
    while True:
        mismatches = await _mismatches(api, backends, pairs)
        if not mismatches:
            break
        assert time.monotonic() < deadline, f"aggregates still wrong after {within}s: {mismatches}"
        await asyncio.sleep(0.25)
    hits_before = metric_value(client, "cache_hits") if client else 0.0
    assert await _mismatches(api, backends, pairs) == []
    if client:
        assert metric_value(client, "cache_hits") - hits_before == len(pairs), "final reads not served by Redis"


async def _mismatches(api: Api, backends: Backends, pairs: list[Pair]) -> list[str]:
    mismatches = []
    for pair in pairs:
        truth: CourseTotals = await backends.truth(pair.user, pair.course)
        reply = await api.course(pair.user, pair.course)
        expected = (200, COURSE_STATS.dump(truth)) if truth.sessions else (404, None)
        served = (reply.status, reply.json if reply.status == 200 else None)
        if served != expected:
            mismatches.append(f"{pair}: served {served}, DynamoDB says {expected}")
    return mismatches


def metric_value(client: TestClient[Any, Any], name: str) -> float:
    """An unlabelled counter of the in-process application, read directly."""
    return float(getattr(client.app[keys.METRICS], name)._value.get())


async def scrape(api: Api) -> dict[str, float]:
    """GET /metrics, as ``{'name{label="v"}': value}``."""
    reply = await api.call("GET", "/metrics")
    assert reply.status == 200
    return metric_samples(reply.body.decode())


async def until(predicate: Callable[[], Awaitable[bool]], within: float, interval: float = 0.1) -> None:
    """Poll an async predicate until it holds."""
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, f"condition not met within {within}s"
        await asyncio.sleep(interval)


async def _act(action: Action) -> None:
    result = action()
    if inspect.isawaitable(result):
        await result


class Repeat:
    """Run an action every ``interval`` seconds from start() until stop().

    stop() asks rather than cancels: a cancellation landing inside a client call can
    come out as that client's timeout, which its retry policy then swallows, and the
    repeats would go on while stop() waits forever.
    """

    def __init__(self, action: Action, interval: float) -> None:
        self._action = action
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.count = 0

    async def _run(self) -> None:
        while not self._stopped.is_set():
            await _act(self._action)
            self.count += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            # An action that failed surfaces here rather than silently stopping the repeats.
            await self._task


async def fault_under_load(
    traffic: Traffic,
    cause: Action,
    clear: Action,
    *,
    seconds: float = 2.0,
    midway: Callable[[], Awaitable[None]] | None = None,
) -> list[Sample]:
    """Cause a fault while traffic flows, keep it ``seconds``, always clear it.

    ``midway`` starts halfway through, to look at the service during the fault.
    Returns the samples of requests sent while the fault was active.
    """
    async with traffic.running():
        await asyncio.sleep(LEAD_SECONDS)
        start = time.monotonic()
        try:
            await _act(cause)
            await asyncio.sleep(seconds / 2)
            # The fault lasts until the look inside is over, however long that takes.
            await asyncio.gather(asyncio.sleep(seconds / 2), midway() if midway else asyncio.sleep(0))
        finally:
            # Requests answered while the fault is being cleared do not count as during it.
            end = time.monotonic()
            await _act(clear)
        await asyncio.sleep(TAIL_SECONDS)
    return traffic.during(start, end)
