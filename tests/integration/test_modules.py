"""Module results (SPEC §7): stored with the session, returned on every session route,
replaced by a re-post; the learner's and the course-wide breakdown by module type equal
what DynamoDB holds after writes, re-posts, deletes, erasure and a Redis flush; every
malformed result a 400 naming the field, with nothing stored."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from service import module_types
from service.app import create_app
from service.domain.model import CourseTotals
from service.http.schemas import TypeBreakdown
from service.settings import Settings
from tests.faults.support import until
from tests.integration.support import Api, Backends, new_id
from tests.integration.test_accounts import assert_error
from tests.integration.test_admin import staff_of

TYPES = ["quiz", "video", "reading", "lab"]
_BREAKDOWN = TypeBreakdown()
MIB = 1024 * 1024


def result(kind: str, score: Any, time_ms: Any, **extra: Any) -> dict[str, Any]:
    return {"moduleType": kind, "score": score, "timeStudied": time_ms, **extra}


def with_results(session: str, results: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"sessionId": session, "modules": results, **extra}


def random_results(rng: random.Random, count: int) -> list[dict[str, Any]]:
    return [result(rng.choice(TYPES), rng.randint(0, 10_000) / 100, rng.randint(0, 600_000)) for _ in range(count)]


async def learner_truth(backends: Backends, user: str, course: str) -> list[dict[str, Any]]:
    return [_BREAKDOWN.dump(kind) for kind in (await backends.truth(user, course)).by_type]


async def course_truth(backends: Backends, users: list[str], course: str) -> list[dict[str, Any]]:
    totals, learners = CourseTotals(), dict[str, int]()
    for user in users:
        mine = await backends.truth(user, course)
        totals += mine
        for kind in mine.by_type:
            learners[kind.module_type] = learners.get(kind.module_type, 0) + 1
    return [{**_BREAKDOWN.dump(kind), "learnersCount": learners[kind.module_type]} for kind in totals.by_type]


async def test_results_are_stored_with_the_session_and_shown_on_every_session_route(api: Api) -> None:
    user, course, session = new_id(), new_id(), new_id()
    module_id = "0B9A4C55-5F0E-4A43-9D1E-1D8D7D2C3B4A"
    results = [result("quiz", 80.5, 1000, moduleId=module_id), result("video", 90, 2000), result("quiz", 70.25, 500)]
    created = await api.post(user, course, with_results(session, results))
    assert created.status == 201, created.body
    shown = created.json
    # The omitted summary follows from the results: their number, mean score (2 dp) and total time.
    assert (shown["totalModulesStudied"], shown["averageScore"], shown["timeStudied"]) == (3, 80.25, 3500)
    assert shown["modules"] == [
        result("quiz", 80.5, 1000, moduleId=module_id.lower()),
        result("video", 90.0, 2000),
        result("quiz", 70.25, 500),
    ]
    assert (await api.session(user, course, session)).json == shown
    page = await api.call("GET", f"/courses/{course}/sessions", user=user)
    assert page.json["items"] == [shown]
    batch = {"sessions": [with_results(new_id(), [result("lab", 100, 60_000)], timeStudied=90_000)]}
    answered = await api.call("POST", f"/courses/{course}/sessions/batch", user=user, json=batch)
    assert [item["status"] for item in answered.json["results"]] == [201]
    stored = await api.session(user, course, answered.json["results"][0]["sessionId"])
    assert (stored.json["timeStudied"], stored.json["modules"]) == (90_000, [result("lab", 100.0, 60_000)])


async def test_a_re_post_replaces_the_results_and_one_without_leaves_none(api: Api, backends: Backends) -> None:
    user, course, session = new_id(), new_id(), new_id()
    first = with_results(session, [result("quiz", 50, 100)])
    assert (await api.post(user, course, first)).status == 201
    assert (await api.post(user, course, first)).status == 200
    [item] = await backends.items(user)
    assert item["version"] == {"N": "1"}  # the same results again changed nothing
    changed = await api.post(user, course, with_results(session, [result("video", 60, 200), result("lab", 70, 300)]))
    assert [kind["moduleType"] for kind in changed.json["modules"]] == ["video", "lab"]
    bare = {"sessionId": session, "totalModulesStudied": 2, "averageScore": 65, "timeStudied": 500}
    replaced = await api.post(user, course, bare)
    assert replaced.status == 200
    assert "modules" not in replaced.json
    assert "modules" not in (await api.session(user, course, session)).json
    assert (await api.call("GET", f"/courses/{course}/modules", user=user)).json == {"items": []}


async def test_the_learner_breakdown_follows_writes_re_posts_deletes_and_flushes(api: Api, backends: Backends) -> None:
    rng = random.Random(7)
    user, course = new_id(), new_id()
    path = f"/courses/{course}/modules"
    assert_error(await api.call("GET", path, user=user), 404, "not_found")
    sessions = [new_id() for _ in range(6)]
    for session in sessions:
        assert (await api.post(user, course, with_results(session, random_results(rng, rng.randint(1, 20))))).status
    # A session without results counts in no type.
    plain = {"sessionId": new_id(), "totalModulesStudied": 4, "averageScore": 50, "timeStudied": 10}
    assert (await api.post(user, course, plain)).status == 201
    assert (await api.call("GET", path, user=user)).json == {"items": await learner_truth(backends, user, course)}
    await api.post(user, course, with_results(sessions[0], random_results(rng, 3)))
    await api.call("DELETE", f"/courses/{course}/sessions/{sessions[1]}", user=user)
    served = (await api.call("GET", path, user=user)).json
    assert served == {"items": await learner_truth(backends, user, course)}
    await backends.redis.flushdb()
    assert (await api.call("GET", path, user=user)).json == served
    kinds = [item["moduleType"] for item in served["items"]]
    assert kinds == sorted(kinds)


async def test_the_course_breakdown_covers_every_learner_and_only_its_teachers_read_it(
    capturing: Api, backends: Backends
) -> None:
    api, rng = capturing, random.Random(11)
    staff = await staff_of(api)
    course, other, users = new_id(), new_id(), [new_id() for _ in range(4)]
    await staff.teach(api, course)
    path = f"/admin/courses/{course}/modules"
    assert_error(await api.call("GET", path, headers=staff.admin), 404, "not_found")
    sessions = {user: [new_id() for _ in range(3)] for user in users}
    for user in users:
        for session in sessions[user]:
            assert (await api.post(user, course, with_results(session, random_results(rng, 5)))).status == 201
        await api.post(user, other, with_results(new_id(), random_results(rng, 2)))

    async def settled() -> bool:
        reply = await api.call("GET", path, headers=staff.teacher)
        return reply.status == 200 and reply.json == {"items": await course_truth(backends, users, course)}

    await until(settled, within=10)
    # A teacher reads only the courses they teach, and a learner no course's.
    assert_error(await api.call("GET", f"/admin/courses/{other}/modules", headers=staff.teacher), 403, "forbidden")
    assert_error(await api.call("GET", path, headers=staff.learner), 403, "forbidden")
    learner_view = await api.call("GET", f"/admin/users/{users[0]}/courses/{course}/modules", headers=staff.teacher)
    assert learner_view.json == {"items": await learner_truth(backends, users[0], course)}
    denied = await api.call("GET", f"/admin/users/{users[0]}/courses/{other}/modules", headers=staff.teacher)
    assert_error(denied, 403, "forbidden")

    # A re-post with other results, a delete, an erasure, and Redis flushed meanwhile.
    await api.post(users[1], course, with_results(sessions[users[1]][0], random_results(rng, 9)))
    await api.call("DELETE", f"/courses/{course}/sessions/{sessions[users[2]][1]}", user=users[2])
    assert (await api.call("DELETE", f"/admin/users/{users[3]}", headers=staff.admin)).status == 204
    await backends.redis.flushdb()
    await until(settled, within=10)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("modules", {"modules": []}),
        ("modules", {"modules": [result("quiz", 50, 10)] * 201}),
        ("modules", {"modules": "quiz"}),
        ("modules", {"modules": [result("podcast-2", 50, 10)]}),  # not a type
        ("modules", {"modules": [result("QUIZ", 50, 10)]}),
        ("modules", {"modules": [result("quiz", 100.5, 10)]}),
        ("modules", {"modules": [result("quiz", 50, -1)]}),
        ("modules", {"modules": [result("quiz", 50, 1.5)]}),
        ("modules", {"modules": [result("quiz", True, 10)]}),
        ("modules", {"modules": [result("quiz", 50, 10, moduleId="not-a-uuid")]}),
        ("modules", {"modules": [{**result("quiz", 50, 10), "extra": 1}]}),
        ("modules", {"modules": [{"moduleType": "quiz", "score": 50}]}),
        ("totalModulesStudied", {"totalModulesStudied": 3}),
        ("averageScore", {"averageScore": 60.03}),
        ("timeStudied", {"timeStudied": 2999}),
        ("timeStudied", {"modules": [result("quiz", 50, 86_400_000), result("quiz", 50, 1)]}),
    ],
)
async def test_a_bad_result_or_a_disagreeing_summary_is_a_400_naming_the_field(
    api: Api, backends: Backends, field: str, change: dict[str, Any]
) -> None:
    user, course = new_id(), new_id()
    # Two results: mean score 60.005 -> 60.01 (60.0 and 60.02 lie within 0.01 of it, 60.03 not), 3000 ms in all.
    body = {"sessionId": new_id(), "modules": [result("quiz", 60.01, 1000), result("video", 60, 2000)], **change}
    reply = await api.post(user, course, body)
    assert_error(reply, 400, "validation_error")
    assert list(reply.json["error"]["fields"]) == [field], reply.json
    batch = await api.call("POST", f"/courses/{course}/sessions/batch", user=user, json={"sessions": [body]})
    assert batch.json["results"][0]["status"] == 400
    assert list(batch.json["results"][0]["error"]["fields"]) == [field]
    await backends.assert_nothing_stored(user)


async def test_the_summary_may_be_given_when_it_agrees(api: Api) -> None:
    user, course = new_id(), new_id()
    results = [result("quiz", 60.01, 1000), result("video", 60, 2000)]
    for given in ({"averageScore": 60.0}, {"averageScore": 60.02}, {"totalModulesStudied": 2, "timeStudied": 3000}):
        reply = await api.post(user, course, {"sessionId": new_id(), "modules": results, **given})
        assert reply.status == 201, (given, reply.body)
        # Stored as the results' mean, whatever agreeing value was given.
        assert reply.json["averageScore"] == 60.01


async def test_without_results_the_summary_is_required_as_before(api: Api, backends: Backends) -> None:
    user, course = new_id(), new_id()
    reply = await api.post(user, course, {"sessionId": new_id(), "averageScore": 50})
    assert_error(reply, 400, "validation_error")
    assert sorted(reply.json["error"]["fields"]) == ["timeStudied", "totalModulesStudied"]
    await backends.assert_nothing_stored(user)


# aiohttp's client warns of sending over 1 MiB at once, which is this test's point.
@pytest.mark.filterwarnings("ignore:Sending a large body:ResourceWarning")
async def test_a_batch_of_results_may_reach_one_mebibyte_and_no_further(api: Api, backends: Backends) -> None:
    user, course = new_id(), new_id()
    rng = random.Random(3)

    def session_with(count: int) -> dict[str, Any]:
        results = [{**item, "moduleId": new_id()} for item in random_results(rng, count)]
        return with_results(new_id(), results, completedAt="2026-01-01T00:00:00Z")

    # Few sessions, so that the serial test server writes them well within the batch's deadline.
    large = {"sessions": [session_with(200) for _ in range(12)]}
    assert 4 * 64 * 1024 < len(json.dumps(large)) <= MIB  # as aiohttp's client sends it
    reply = await api.call("POST", f"/courses/{course}/sessions/batch", user=user, json=large)
    assert [item["status"] for item in reply.json["results"]] == [201] * 12
    assert (await api.post(user, course, session_with(200))).status == 201  # within a POST's 64 KiB
    over = {"sessions": [session_with(200) for _ in range(60)]}
    assert len(json.dumps(over)) > MIB
    refused = await api.call("POST", f"/courses/{course}/sessions/batch", user=user, json=over)
    assert_error(refused, 413, "payload_too_large")
    totals = await backends.truth(user, course)
    assert totals.sessions == 13
    assert sum(kind.results for kind in totals.by_type) == 13 * 200


@pytest.mark.usefixtures("restore_module_types")
async def test_a_retired_type_is_refused_in_new_results_and_still_reported(
    aiohttp_client: AiohttpClient, settings: Settings, backends: Backends, tmp_path: Path
) -> None:
    def catalogue(retired: bool) -> Settings:
        path = tmp_path / f"types-{retired}.yaml"
        path.write_text(
            f"{module_types.DEFAULT_FILE.read_text()}- {{id: fax, name: Fax, points: 1, retired: {retired}}}\n"
        )
        return dataclasses.replace(settings, module_types=module_types.load(path))

    user, course, session = new_id(), new_id(), new_id()
    before = Api(await aiohttp_client(create_app(catalogue(retired=False))))
    assert (await before.post(user, course, with_results(session, [result("fax", 40, 100)]))).status == 201

    after = Api(await aiohttp_client(create_app(catalogue(retired=True))))
    refused = await after.post(user, course, with_results(new_id(), [result("fax", 50, 100)]))
    assert_error(refused, 400, "validation_error")
    assert "retired" in refused.json["error"]["fields"]["modules"]
    spec = (await after.call("GET", "/api/docs/swagger.json")).json
    assert "fax" not in json.dumps(spec["components"]["schemas"]["ModuleResultBody"])
    # What was stored before keeps being served, in the session and in the breakdown.
    assert (await after.session(user, course, session)).json["modules"] == [result("fax", 40.0, 100)]
    breakdown = await after.call("GET", f"/courses/{course}/modules", user=user)
    assert breakdown.json == {"items": await learner_truth(backends, user, course)}
    assert [item["moduleType"] for item in breakdown.json["items"]] == ["fax"]
