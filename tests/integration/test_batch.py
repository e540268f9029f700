"""POST /courses/{courseId}/sessions/batch: each item an independent idempotent upsert."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.support import Api, Backends, Reply, new_id


def item(modules: int = 2, session: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"totalModulesStudied": modules, "averageScore": 50, "timeStudied": 1000, **extra}
    if session is not None:
        body["sessionId"] = session
    return body


async def batch(api: Api, user: str, course: str, sessions: Any) -> Reply:
    return await api.call("POST", f"/courses/{course}/sessions/batch", user=user, json={"sessions": sessions})


async def test_each_item_is_an_upsert_and_the_aggregate_counts_each_once(api: Api, backends: Backends) -> None:
    user, course = new_id(), new_id()
    kept = new_id()
    first = await batch(api, user, course, [item(1, kept), item(2), item(3)])
    assert first.status == 200
    assert [(r["index"], r["status"]) for r in first.json["results"]] == [(0, 201), (1, 201), (2, 201)]
    assert first.json["results"][0]["sessionId"] == kept
    # An exact re-post of one item (200, counted once) beside a new session.
    again = await batch(api, user, course, [item(1, kept.upper()), item(4)])
    assert [r["status"] for r in again.json["results"]] == [200, 201]
    course_stats = (await api.course(user, course)).json
    assert course_stats["sessionsCount"] == 4
    assert course_stats["totalModulesStudied"] == 1 + 2 + 3 + 4
    truth = await backends.truth(user, course)
    assert (truth.sessions, truth.modules) == (4, 10)


async def test_a_bad_item_is_refused_alone_and_stores_nothing_of_its_own(api: Api, backends: Backends) -> None:
    user, course = new_id(), new_id()
    good, repeated = new_id(), new_id()
    items = [
        item(1, good),
        item(-1),  # out of range
        item(2, extra_field=True),  # unknown field
        "not an object",
        item(3, repeated),
        item(4, repeated),  # the same session twice in one batch
        item(5, "not-a-uuid"),
    ]
    reply = await batch(api, user, course, items)
    assert reply.status == 200
    results = reply.json["results"]
    assert [r["status"] for r in results] == [201, 400, 400, 400, 201, 400, 400]
    assert "totalModulesStudied" in results[1]["error"]["fields"]
    assert "extra_field" in results[2]["error"]["fields"]
    assert results[5]["error"]["fields"]["sessionId"] == "sessionId repeats item 4 of this batch"
    assert results[5]["sessionId"] == repeated
    assert all(r["error"]["code"] == "validation_error" for r in results if r["status"] == 400)
    stored = {item_["sessionKey"]["S"].partition("#")[2] for item_ in await backends.items(user)}
    assert stored == {good, repeated}
    assert (await api.session(user, course, repeated)).json["totalModulesStudied"] == 3


@pytest.mark.parametrize(
    "body",
    [
        {"sessions": []},
        {"sessions": [item() for _ in range(101)]},
        {"sessions": item()},
        {"sessions": None},
        {},
        {"sessions": [item()], "more": 1},
    ],
    ids=["empty", "101 items", "not a list", "null", "missing", "unknown field"],
)
async def test_a_bad_batch_is_one_400_and_stores_nothing(api: Api, backends: Backends, body: Any) -> None:
    user, course = new_id(), new_id()
    reply = await api.call("POST", f"/courses/{course}/sessions/batch", user=user, json=body)
    assert reply.status == 400, reply.body
    assert reply.json["error"]["code"] == "validation_error"
    await backends.assert_nothing_stored(user)


async def test_a_hundred_items_are_all_recorded(api: Api) -> None:
    user, course = new_id(), new_id()
    items = [item(1, new_id()) for _ in range(100)]
    reply = await batch(api, user, course, items)
    # On a loaded machine the serial test server may leave the last items past the batch's share of the
    # deadline (503 in their results): the client sends those again, which is safe, as documented.
    for _ in range(3):
        unfinished = [items[r["index"]] for r in reply.json["results"] if r["status"] == 503]
        if not unfinished:
            break
        reply = await batch(api, user, course, unfinished)
    assert {r["status"] for r in reply.json["results"]} <= {200, 201}
    assert (await api.course(user, course)).json["sessionsCount"] == 100
