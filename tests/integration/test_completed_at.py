"""``completedAt`` (SPEC §7): given or the time of first storage, kept by a re-post that omits it,
in every session representation; every malformed one a 400 that stores nothing."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tests.integration.support import Api, Backends, new_id


def body(session: str, modules: int = 3, **extra: Any) -> dict[str, Any]:
    return {"sessionId": session, "totalModulesStudied": modules, "averageScore": 80, "timeStudied": 1000, **extra}


def parsed(wire: str) -> datetime.datetime:
    assert wire.endswith("Z")
    assert len(wire) == len("2026-12-01T10:00:00.000Z")
    return datetime.datetime.fromisoformat(wire)


async def test_without_one_it_is_the_time_of_first_storage_and_a_re_post_keeps_it(api: Api) -> None:
    user, course, session = new_id(), new_id(), new_id()
    before = datetime.datetime.now(datetime.UTC)
    created = await api.post(user, course, body(session))
    after = datetime.datetime.now(datetime.UTC)
    first = created.json["completedAt"]
    assert before - datetime.timedelta(seconds=1) <= parsed(first) <= after
    replaced = await api.post(user, course, body(session, modules=4))
    assert (replaced.status, replaced.json["completedAt"]) == (200, first)
    assert (await api.session(user, course, session)).json["completedAt"] == first


async def test_a_given_one_is_stored_in_utc_to_the_millisecond_and_a_re_post_may_change_it(api: Api) -> None:
    user, course, session = new_id(), new_id(), new_id()
    created = await api.post(user, course, body(session, completedAt="2026-01-02T03:04:05.678+02:00"))
    assert created.json["completedAt"] == "2026-01-02T01:04:05.678Z"
    unchanged = await api.post(user, course, body(session, completedAt="2026-01-02T01:04:05.678Z"))
    assert unchanged.status == 200
    moved = await api.post(user, course, body(session, completedAt="2025-06-01T00:00:00Z"))
    assert (moved.status, moved.json["completedAt"]) == (200, "2025-06-01T00:00:00.000Z")
    page = await api.call("GET", f"/courses/{course}/sessions", user=user)
    assert [item["completedAt"] for item in page.json["items"]] == ["2025-06-01T00:00:00.000Z"]


async def test_a_batch_carries_completion_times(api: Api) -> None:
    user, course = new_id(), new_id()
    sessions = [new_id(), new_id()]
    batch = {"sessions": [body(sessions[0], completedAt="2024-02-29T23:59:59.999Z"), body(sessions[1])]}
    reply = await api.call("POST", f"/courses/{course}/sessions/batch", user=user, json=batch)
    assert [result["status"] for result in reply.json["results"]] == [201, 201]
    assert (await api.session(user, course, sessions[0])).json["completedAt"] == "2024-02-29T23:59:59.999Z"
    assert parsed((await api.session(user, course, sessions[1])).json["completedAt"]).year >= 2026


def _in_minutes(minutes: int) -> str:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize(
    "completed",
    [
        "2099-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2026-12-01T10:00:00",
        "not a date",
        "2026-12-01",
        "",
        1764583200000,
        None,
        True,
        "2026-13-01T10:00:00Z",
    ],
)
async def test_a_bad_completion_time_is_a_400_naming_it_and_stores_nothing(
    api: Api, backends: Backends, completed: Any
) -> None:
    user = new_id()
    reply = await api.post(user, new_id(), body(new_id(), completedAt=completed))
    assert reply.status == 400, reply.body
    assert "completedAt" in reply.json["error"]["fields"]
    await backends.assert_nothing_stored(user)


async def test_the_future_bound_leaves_clocks_five_minutes_of_drift(api: Api, backends: Backends) -> None:
    user, course = new_id(), new_id()
    assert (await api.post(user, course, body(new_id(), completedAt=_in_minutes(4)))).status == 201
    refused = await api.post(new_id(), course, body(new_id(), completedAt=_in_minutes(6)))
    assert refused.status == 400
