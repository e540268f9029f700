"""The correctness invariant, exercised for real: concurrent writers, re-posts,
readers and Redis flushes across two service instances sharing Redis and DynamoDB.
Once quiet, every aggregate served must equal the one recomputed from DynamoDB."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from bench.datagen import Write, plan_writes
from localmode import idp
from service import keys
from service.app import create_app
from service.domain.model import CourseTotals, TypeTotals, type_sums_of, weeks_of
from service.dynamodb import codec
from service.http.schemas import COURSE_STATS, TypeBreakdown
from service.redis.cache import aggregate_key, board_key, course_key, points_key
from service.settings import Settings
from tests.faults.support import until
from tests.integration.support import TABLE, Api, Backends, new_id
from tests.integration.test_leaderboard import CURRENT, board_exact

pytestmark = pytest.mark.slow
BREAKDOWN = TypeBreakdown()


def patient(settings: Settings, **overrides: Any) -> Settings:
    """The test server serves one DynamoDB request at a time, and these runs queue hundreds at once
    (rebuilds read 16 partitions, an erasure writes 16 batches), while one event loop runs every
    instance and client: time, not exactness, is what they would run short of on a loaded machine
    (a Redis call past its timeout is answered from DynamoDB, one more rebuild), and the fault
    drills own the timeouts."""
    return dataclasses.replace(
        settings,
        request_deadline_seconds=30.0,
        dynamodb_timeout_seconds=10.0,
        redis_timeout_seconds=5.0,
        **overrides,
    )


async def two_instances(aiohttp_client: AiohttpClient, settings: Settings) -> list[TestClient[Any, Any]]:
    return [await aiohttp_client(create_app(patient(settings))) for _ in range(2)]


@pytest.mark.parametrize("seed", [11, 22, 33, 44])
async def test_aggregates_stay_exact_under_concurrency_and_flushes(
    seed: int, aiohttp_client: AiohttpClient, settings: Settings, backends: Backends
) -> None:
    rng = random.Random(seed)
    clients = await two_instances(aiohttp_client, settings)
    apis = [Api(client) for client in clients]
    pairs = [(new_id(), new_id()) for _ in range(4)]
    writes = plan_writes(rng, pairs, 320)
    started: dict[tuple[str, str], set[str]] = {pair: set() for pair in pairs}
    limit = asyncio.Semaphore(48)

    async def write(item: Write) -> None:
        async with limit:
            await asyncio.sleep(rng.uniform(0, 0.01))
            started[item.user, item.course].add(item.session)
            reply = await rng.choice(apis).post(item.user, item.course, item.payload)
            assert reply.status in (200, 201), reply.body

    async def read(user: str, course: str) -> None:
        async with limit:
            await asyncio.sleep(rng.uniform(0, 0.5))
            before = len(started[user, course])
            reply = await rng.choice(apis).course(user, course)
            if reply.status == 404:
                return
            assert reply.status == 200, reply.body
            # A double-counted session would push the count past what was ever posted.
            assert reply.json["sessionsCount"] <= len(started[user, course]), (before, reply.json)

    async def flush() -> None:
        await asyncio.sleep(rng.uniform(0, 1.0))
        await backends.redis.flushdb()

    jobs = [write(item) for item in writes]
    jobs += [read(*rng.choice(pairs)) for _ in range(160)]
    jobs += [flush() for _ in range(6)]
    rng.shuffle(jobs)
    await asyncio.gather(*jobs)

    for user, course in pairs:
        truth = COURSE_STATS.dump(await backends.truth(user, course))
        assert truth["sessionsCount"] == len(started[user, course])
        for api in apis:
            reply = await api.course(user, course)
            assert reply.json == truth, (seed, user, course)
        await assert_hash_consistent(backends, aggregate_key(user, course))


@dataclasses.dataclass
class Traffic:
    """The jobs of one concurrent run, on randomly chosen instances."""

    rng: random.Random
    apis: list[Api]
    backends: Backends
    staff: dict[str, str]
    again: list[tuple[str, str, str]]
    limit: asyncio.Semaphore = dataclasses.field(default_factory=lambda: asyncio.Semaphore(32))

    async def write(self, item: Write) -> None:
        async with self.limit:
            await asyncio.sleep(self.rng.uniform(0, 0.3))
            reply = await self.rng.choice(self.apis).post(item.user, item.course, item.payload)
            assert reply.status in (200, 201), reply.body

    async def delete(self, user: str, course: str, session: str) -> None:
        """Through the route; some deleted sessions are posted again, with new values."""
        await asyncio.sleep(self.rng.uniform(0, 0.5))
        reply = await self.rng.choice(self.apis).call("DELETE", f"/courses/{course}/sessions/{session}", user=user)
        assert reply.status in (204, 404), reply.body
        if (user, course, session) in self.again:
            await asyncio.sleep(self.rng.uniform(0, 0.2))
            modules = self.rng.randint(0, 9)
            payload = {"sessionId": session, "totalModulesStudied": modules, "averageScore": 10, "timeStudied": 5}
            assert (await self.rng.choice(self.apis).post(user, course, payload)).status in (200, 201)

    async def vanish(self, user: str, course: str, session: str) -> None:
        """Removed behind the service, straight from the table."""
        await asyncio.sleep(self.rng.uniform(0, 0.5))
        await self.backends.dynamodb.delete_item(TableName=TABLE, Key=codec.item_key(user, course, session))

    async def read(self, path: str, user: str | None) -> None:
        async with self.limit:
            await asyncio.sleep(self.rng.uniform(0, 0.6))
            headers = None if user else self.staff
            reply = await self.rng.choice(self.apis).call("GET", path, user=user, headers=headers)
            assert reply.status in (200, 404), reply.body

    async def flush(self) -> None:
        await asyncio.sleep(self.rng.uniform(0, 0.6))
        await self.backends.redis.flushdb()

    async def erase(self, user: str, admin: dict[str, str]) -> None:
        """Right to erasure, while the learner's own writes go on."""
        await asyncio.sleep(self.rng.uniform(0.1, 0.4))
        api = self.rng.choice(self.apis)
        reply = await api.call("DELETE", f"/admin/users/{user}", headers=admin)
        while reply.status == 202:  # past the deadline, going on: asking again joins it
            reply = await api.call("DELETE", f"/admin/users/{user}", headers=admin)
        assert reply.status == 204, reply.body


def staff_headers(settings: Settings, role: str = "teacher") -> dict[str, str]:
    assert settings.cognito_user_pool_id
    assert settings.auth_client_id
    groups: dict[str, object] = {"cognito:groups": [role]}
    token = idp.access_token(settings.cognito_user_pool_id, settings.auth_client_id, new_id(), **groups)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("seed", [5, 6])
async def test_learner_and_course_wide_figures_stay_exact_under_writes_deletes_and_flushes(
    seed: int, aiohttp_client: AiohttpClient, settings: Settings, backends: Backends
) -> None:
    # Several learners of two courses write (with module results or without), re-post, delete
    # through the route and post deleted sessions again, while sessions also vanish behind the
    # service, one learner is erased as they keep writing, and Redis is flushed; two instances
    # read the table's stream. Once quiet, every learner's aggregate, breakdown and points, every
    # course's figures, breakdown, learner list and leaderboards (all time and each week's), and every
    # cached hash and board equal what DynamoDB holds.
    rng = random.Random(seed)
    capturing = patient(settings, change_capture=True)
    apis = [Api(await aiohttp_client(create_app(capturing))) for _ in range(2)]
    courses, users = [new_id(), new_id()], [new_id() for _ in range(4)]
    pairs = [(user, course) for user in users for course in courses if rng.random() < 0.8]
    # Half the sessions carry module results, and a re-post may change them or drop them; sessions are
    # completed in the last three weeks, and a re-post may move one to another week.
    first, later = (plan_writes(rng, pairs, 80, results_share=0.5, weeks_back=3) for _ in range(2))
    traffic = Traffic(rng, apis, backends, staff_headers(settings, "admin"), again=[])
    await asyncio.gather(*(traffic.write(item) for item in first))
    for pair in pairs:  # cached and complete before the deletes begin
        assert (await apis[0].course(*pair)).status == 200
    posted = sorted({(item.user, item.course, item.session) for item in first})
    by_route = rng.sample(posted, len(posted) // 3)
    traffic.again = rng.sample(by_route, len(by_route) // 2)
    behind = rng.sample([item for item in posted if item not in by_route], len(posted) // 6)

    jobs = [traffic.write(item) for item in later]
    jobs += [traffic.delete(*item) for item in by_route] + [traffic.vanish(*item) for item in behind]
    jobs += [traffic.read(f"/courses/{course}", user) for user, course in rng.choices(pairs, k=40)]
    jobs += [traffic.read(f"/admin/courses/{course}", None) for course in rng.choices(courses, k=40)]
    jobs += [
        traffic.read(f"/courses/{course}/leaderboard?period=week", user) for user, course in rng.choices(pairs, k=20)
    ]
    jobs += [traffic.read(f"/admin/courses/{course}/leaderboard", None) for course in rng.choices(courses, k=20)]
    jobs += [traffic.flush() for _ in range(3)] + [traffic.erase(users[0], staff_headers(settings, "admin"))]
    rng.shuffle(jobs)
    await asyncio.gather(*jobs)

    # Exact once the stream has been read past the last change (it is polled every 0.2 s).
    await until(lambda: all_exact(apis, backends, pairs), within=10)
    for course in courses:
        await until(lambda course=course: course_exact(apis, traffic.staff, backends, users, course), within=10)  # type: ignore[misc]
        await until(lambda course=course: boards_exact(apis, traffic.staff, backends, users, course), within=10)  # type: ignore[misc]
        await assert_hash_consistent(backends, course_key(course))
    for user, course in pairs:
        await assert_hash_consistent(backends, aggregate_key(user, course))
    for user in users:
        await assert_hash_consistent(backends, points_key(user))


async def course_exact(
    apis: list[Api], staff: dict[str, str], backends: Backends, users: list[str], course: str
) -> bool:
    """Whether every instance serves the course's figures and learners as DynamoDB's sessions make them."""
    truths = {user: await backends.truth(user, course) for user in users}
    studied = {user: truth for user, truth in truths.items() if truth.sessions}
    total = sum(studied.values(), CourseTotals())
    figures = (200, {**COURSE_STATS.dump(total), "learnersCount": len(studied)}) if studied else (404, None)
    learners = {user: COURSE_STATS.dump(truth) for user, truth in studied.items()}
    type_learners = Counter(kind.module_type for truth in studied.values() for kind in truth.by_type)
    breakdown = [{**BREAKDOWN.dump(kind), "learnersCount": type_learners[kind.module_type]} for kind in total.by_type]
    for api in apis:
        reply = await api.call("GET", f"/admin/courses/{course}", headers=staff)
        if (reply.status, reply.json if reply.status == 200 else None) != figures:
            return False
        reply = await api.call("GET", f"/admin/courses/{course}/modules", headers=staff)
        if studied and reply.json != {"items": breakdown}:
            return False
        listed = await api.call("GET", f"/admin/courses/{course}/learners?limit=100", headers=staff)
        if {item.pop("userId"): item for item in listed.json["items"]} != learners:
            return False
    return True


async def boards_exact(
    apis: list[Api], staff: dict[str, str], backends: Backends, users: list[str], course: str
) -> bool:
    """Whether every instance serves the course's leaderboards, all time and of each week written, as
    DynamoDB's sessions make them."""
    weeks = (None, *range(CURRENT - 3, CURRENT + 1))
    return all([await board_exact(api, staff, backends, users, course, week=week) for api in apis for week in weeks])


async def all_exact(apis: list[Api], backends: Backends, pairs: list[tuple[str, str]]) -> bool:
    """Whether every instance serves every aggregate, and every learner's points, exactly as DynamoDB holds them now."""
    for user in {user for user, _ in pairs}:
        courses = [course for owner, course in pairs if owner == user]
        truths = [truth for truth in [await backends.truth(user, course) for course in courses] if truth.sessions]
        expected_points = {"points": sum(truth.points for truth in truths), "coursesCount": len(truths)}
        for api in apis:
            reply = await api.call("GET", "/points", user=user)
            if (reply.status, reply.json if reply.status == 200 else None) != (
                (200, expected_points) if truths else (404, None)
            ):
                return False
    for user, course in pairs:
        truth = await backends.truth(user, course)
        expected = (200, COURSE_STATS.dump(truth)) if truth.sessions else (404, None)
        breakdown = {"items": [BREAKDOWN.dump(kind) for kind in truth.by_type]}
        for api in apis:
            reply = await api.course(user, course)
            if (reply.status, reply.json if reply.status == 200 else None) != expected:
                return False
            reply = await api.call("GET", f"/courses/{course}/modules", user=user)
            if truth.sessions and reply.json != breakdown:
                return False
    return True


async def assert_hash_consistent(backends: Backends, key: str) -> None:
    """The cached sums equal the sums of the entries' contributions they sit beside, and a course's
    leaderboards hold exactly its entries' points (all time, and each week's)."""
    raw: dict[bytes, bytes] = await backends.redis.hgetall(key)  # type: ignore[assignment]
    fields = {name.decode(): value.decode() for name, value in raw.items()}
    if not fields:
        return  # expired or never read again since the last flush
    parsed = {}
    for name, value in fields.items():
        if name.startswith("s:"):
            head, _, weeks = value.partition("#")
            sums, _, types = head.partition("|")
            parsed[name[2:]] = (tuple(map(int, sums.split(":")[1:])), type_sums_of(types), weeks_of(weeks))
    entries = [sums for sums, _, _ in parsed.values()]
    for index, name in enumerate(("n", "m", "w", "ss", "t", "p")):
        assert int(fields.get(name, 0)) == sum(entry[index] for entry in entries), name
    assert int(fields.get("L", 0)) == sum(1 for entry in entries if entry[0])
    by_type = [types for _, types, _ in parsed.values()]
    for kind in {kind.module_type for sums in by_type for kind in sums}:
        mine = [next((sums for sums in entry if sums.module_type == kind), TypeTotals(kind)) for entry in by_type]
        for letter, attribute in (("c", "results"), ("t", "time_ms"), ("s", "score_sum")):
            assert int(fields.get(f"b:{kind}:{letter}", 0)) == sum(getattr(sums, attribute) for sums in mine)
        assert int(fields.get(f"b:{kind}:L", 0)) == sum(1 for sums in mine if sums.results)
    studied = {kind.module_type for sums in by_type for kind in sums if kind.results}
    assert int(fields.get("G", 0)) == sum(1 for kind in studied if int(fields.get(f"b:{kind}:c", 0)) > 0)
    if key.startswith("stats:v4:course:"):
        await assert_boards_consistent(backends, key[len("stats:v4:course:{") : -1], fields, parsed)


async def assert_boards_consistent(
    backends: Backends, course: str, fields: dict[str, str], parsed: dict[str, Any]
) -> None:
    async def points(key: str) -> dict[str, int]:
        board: list[tuple[bytes, float]] = await backends.redis.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
        return {member.decode(): -int(score) for member, score in board}

    assert await points(board_key(course)) == {user: sums[5] for user, (sums, _, _) in parsed.items() if sums[0]}
    for week in {week for _, _, weeks in parsed.values() for week, _ in weeks}:
        expected = {user: dict(weeks)[week] for user, (_, _, weeks) in parsed.items() if week in dict(weeks)}
        assert await points(board_key(course, week)) == expected, week
        assert int(fields.get(f"k:{week}", 0)) == len(expected)


@pytest.mark.parametrize("instances", [1, 2])
async def test_concurrent_cold_reads_cause_one_rebuild(
    instances: int, aiohttp_client: AiohttpClient, settings: Settings, backends: Backends
) -> None:
    clients = (await two_instances(aiohttp_client, settings))[:instances]
    user, course = new_id(), new_id()
    api = Api(clients[0])
    for score in range(20):
        await api.post(user, course, {"totalModulesStudied": 1, "averageScore": score, "timeStudied": 1})
    await backends.redis.flushdb()
    replies = await asyncio.gather(*(Api(clients[i % instances]).course(user, course) for i in range(100)))
    assert {reply.status for reply in replies} == {200}
    assert {reply.json["sessionsCount"] for reply in replies} == {20}
    rebuilds = sum(client.app[keys.METRICS].rebuilds._value.get() for client in clients)
    fallbacks = sum(client.app[keys.METRICS].fallback_reads._value.get() for client in clients)
    assert rebuilds == 1, f"{fallbacks} of them answered from DynamoDB while Redis did not answer"


async def test_concurrent_readers_of_a_lost_leaderboard_cause_one_rebuild(
    aiohttp_client: AiohttpClient, settings: Settings, backends: Backends
) -> None:
    writer = await aiohttp_client(create_app(patient(settings, change_capture=True)))
    clients = [writer, await aiohttp_client(create_app(patient(settings)))]
    course, learners = new_id(), [new_id() for _ in range(20)]
    for index, user in enumerate(learners):
        body = {"totalModulesStudied": index, "averageScore": 50, "timeStudied": 1}
        assert (await Api(writer).post(user, course, body)).status == 201

    async def listed() -> bool:
        reply = await Api(writer).call("GET", f"/courses/{course}/leaderboard", user=learners[0])
        return bool(reply.json["learnersCount"] == len(learners))

    await until(listed, within=10)
    await backends.redis.flushdb()
    before = sum(client.app[keys.METRICS].rebuilds._value.get() for client in clients)
    replies = await asyncio.gather(
        *(
            Api(clients[n % 2]).call("GET", f"/courses/{course}/leaderboard?period={period}", user=learners[n % 20])
            for n in range(100)
            for period in ("all", "week")
        )
    )
    assert {(reply.status, reply.json["learnersCount"]) for reply in replies} == {(200, len(learners))}
    # Each learner's own place: 10 x index points, so learner i ranks 20 - i.
    assert {(reply.json["you"]["rank"], reply.json["you"]["points"]) for reply in replies[::2][:20]} == {
        (len(learners) - index, 5 * index) for index in range(len(learners))
    }
    rebuilds = sum(client.app[keys.METRICS].rebuilds._value.get() for client in clients) - before
    assert rebuilds == 1
