"""A learner's sessions in a course, a page at a time, with sealed cursors."""

from __future__ import annotations

import base64

import pytest

from tests.integration.support import Api, new_id


def body(session: str, modules: int) -> dict[str, object]:
    return {"sessionId": session, "totalModulesStudied": modules, "averageScore": 50, "timeStudied": 1000}


async def post_sessions(api: Api, user: str, course: str, count: int) -> list[str]:
    sessions = sorted(new_id() for _ in range(count))
    for index, session in enumerate(sessions):
        assert (await api.post(user, course, body(session, index))).status == 201
    return sessions


async def every_page(api: Api, user: str, course: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    query = f"limit={limit}"
    while True:
        reply = await api.call("GET", f"/courses/{course}/sessions?{query}", user=user)
        assert reply.status == 200, reply.body
        pages.append([item["sessionId"] for item in reply.json["items"]])
        cursor = reply.json.get("nextCursor")
        if cursor is None:
            return pages
        query = f"limit={limit}&cursor={cursor}"


@pytest.mark.parametrize(("count", "limit", "sizes"), [(7, 3, [3, 3, 1]), (6, 3, [3, 3]), (2, 50, [2]), (0, 5, [0])])
async def test_pages_hold_every_session_once_in_order_and_the_last_has_no_cursor(
    api: Api, count: int, limit: int, sizes: list[int]
) -> None:
    user, course = new_id(), new_id()
    sessions = await post_sessions(api, user, course, count)
    await post_sessions(api, user, new_id(), 2)  # another course of the same learner stays out
    await post_sessions(api, new_id(), course, 2)  # so does another learner in this course
    pages = await every_page(api, user, course, limit)
    assert [len(page) for page in pages] == sizes
    assert [session for page in pages for session in page] == sessions


async def test_items_are_the_sessions_as_stored(api: Api) -> None:
    user, course = new_id(), new_id()
    [session] = await post_sessions(api, user, course, 1)
    listed = await api.call("GET", f"/courses/{course}/sessions", user=user)
    assert listed.json == {"items": [(await api.session(user, course, session)).json]}


async def test_the_default_page_is_fifty(api: Api) -> None:
    user, course = new_id(), new_id()
    await post_sessions(api, user, course, 51)
    first = await api.call("GET", f"/courses/{course}/sessions", user=user)
    assert len(first.json["items"]) == 50
    assert "nextCursor" in first.json


def tampered(cursor: str) -> dict[str, str]:
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[-1] ^= 1
    return {
        "a flipped bit": base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode(),
        "truncated": cursor[:-4],
        "made up": base64.urlsafe_b64encode(b"1" + b"\0" * 16 + new_id().encode()).decode(),
        "not base64": "%%%",
    }


async def test_a_tampered_or_foreign_cursor_is_a_400(api: Api) -> None:
    user, course = new_id(), new_id()
    await post_sessions(api, user, course, 3)
    cursor = (await api.call("GET", f"/courses/{course}/sessions?limit=1", user=user)).json["nextCursor"]
    attempts = {
        **tampered(cursor),
        "another learner's": (cursor, new_id(), course),
        "another course's": (cursor, user, new_id()),
    }
    for name, attempt in attempts.items():
        bad, who, where = attempt if isinstance(attempt, tuple) else (attempt, user, course)
        reply = await api.call("GET", f"/courses/{where}/sessions?limit=1&cursor={bad}", user=who)
        assert reply.status == 400, name
        assert reply.json["error"]["code"] == "validation_error"
        assert "cursor" in reply.json["error"]["fields"], name


@pytest.mark.parametrize("limit", ["0", "101", "ten", "1.5", "-1", ""])
async def test_a_bad_limit_is_a_400(api: Api, limit: str) -> None:
    reply = await api.call("GET", f"/courses/{new_id()}/sessions?limit={limit}", user=new_id())
    assert reply.status == 400
    assert "limit" in reply.json["error"]["fields"]
