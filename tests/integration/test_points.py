"""Points (SPEC §8) are earned when a session is written, by the points table then: a later
change of the table reaches sessions written after it, and a re-post, never history."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from service import module_types
from service.app import create_app
from service.settings import Settings
from tests.integration.support import Api, Backends, new_id


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
    plain = {"totalModulesStudied": 2, "averageScore": 50, "timeStudied": 10}
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
