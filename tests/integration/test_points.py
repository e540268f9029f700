"""Points (SPEC §8) are earned when a session is written, by the points table then: a later
change of the table reaches sessions written after it, and a re-post, never history."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from service import module_types
from service.app import create_app
from service.settings import Settings
from tests.integration.support import Api, Backends, new_id
from tests.integration.test_accounts import assert_error

PLAIN = {"totalModulesStudied": 2, "averageScore": 50, "timeStudied": 10}


def with_quiz_points(settings: Settings, tmp_path: Path, points: int, session_points: int) -> Settings:
    shipped = module_types.DEFAULT_FILE.read_text()
    path = tmp_path / f"types-{points}.yaml"
    path.write_text(
        shipped.replace("{id: quiz, name: Quiz, points: 20}", f"{{id: quiz, name: Quiz, points: {points}}}")
    )
    return dataclasses.replace(settings, module_types=module_types.load(path), session_points=session_points)


@pytest.mark.usefixtures("restore_module_types")
async def test_a_change_of_the_points_table_reaches_new_writes_and_re_posts_never_history(
    aiohttp_client: AiohttpClient, settings: Settings, backends: Backends, tmp_path: Path
) -> None:
    user, course, kept, reposted = new_id(), new_id(), new_id(), new_id()
    quiz = {"modules": [{"moduleType": "quiz", "score": 100, "timeStudied": 1000}]}
    plain = PLAIN
    before = Api(await aiohttp_client(create_app(with_quiz_points(settings, tmp_path, 20, 10))))
    assert (await before.post(user, course, {"sessionId": kept, **quiz})).json["points"] == 20
    assert (await before.post(user, course, {"sessionId": reposted, **plain})).json["points"] == 10
    assert (await before.course(user, course)).json["points"] == 30

    after = Api(await aiohttp_client(create_app(with_quiz_points(settings, tmp_path, 50, 30))))
    assert (await after.session(user, course, kept)).json["points"] == 20
    assert (await after.course(user, course)).json["points"] == 30
    again = await after.post(user, course, {"sessionId": reposted, **plain})
    # The same values, worth more now: a change, stored with the new points.
    assert (again.status, again.json["points"]) == (200, 30)
    new = await after.post(user, course, {"sessionId": new_id(), **quiz})
    assert (new.status, new.json["points"]) == (201, 50)
    served = (await after.course(user, course)).json
    assert served["points"] == 20 + 30 + 50 == (await backends.truth(user, course)).points
    await backends.redis.flushdb()
    assert (await after.course(user, course)).json == served


async def expected_points(backends: Backends, user: str, courses: list[str]) -> tuple[int, Any]:
    """GET /points as the learner's items in DynamoDB make it."""
    truths = [await backends.truth(user, course) for course in courses]
    studied = [truth for truth in truths if truth.sessions]
    if not studied:
        return 404, None
    return 200, {"points": sum(truth.points for truth in studied), "coursesCount": len(studied)}


async def points_of(api: Api, user: str) -> tuple[int, Any]:
    reply = await api.call("GET", "/points", user=user)
    return reply.status, reply.json if reply.status == 200 else None


async def test_the_total_covers_every_course_and_follows_re_posts_deletes_and_flushes(
    api: Api, backends: Backends
) -> None:
    user, other, courses = new_id(), new_id(), [new_id(), new_id(), new_id()]
    assert_error(await api.call("GET", "/points", user=user), 404, "not_found")
    sessions = {course: [new_id(), new_id()] for course in courses}
    quiz = [
        {"moduleType": "quiz", "score": 90, "timeStudied": 100},
        {"moduleType": "lab", "score": 40, "timeStudied": 5},
    ]
    for index, course in enumerate(courses):
        for session in sessions[course]:
            body = {"sessionId": session, "modules": quiz} if index else {**PLAIN, "sessionId": session}
            assert (await api.post(user, course, body)).status == 201
    await api.post(other, courses[0], {**PLAIN, "sessionId": new_id()})  # another learner's: never counted
    assert await points_of(api, user) == await expected_points(backends, user, courses)
    assert (await points_of(api, user))[1]["coursesCount"] == 3

    # A re-post worth other points, a course left without sessions, Redis flushed.
    await api.post(
        user,
        courses[0],
        {"sessionId": sessions[courses[0]][0], "totalModulesStudied": 9, "averageScore": 99, "timeStudied": 1},
    )
    for session in sessions[courses[2]]:
        assert (await api.call("DELETE", f"/courses/{courses[2]}/sessions/{session}", user=user)).status == 204
    served = await points_of(api, user)
    assert served == await expected_points(backends, user, courses)
    assert served[1]["coursesCount"] == 2
    await backends.redis.flushdb()
    assert await points_of(api, user) == served
    for course in courses[:2]:
        for session in sessions[course]:
            await api.call("DELETE", f"/courses/{course}/sessions/{session}", user=user)
    assert_error(await api.call("GET", "/points", user=user), 404, "not_found")
