"""Leaderboards (SPEC §8): ranks, points and learnersCount equal what DynamoDB's sessions imply,
all time and by ISO week, through re-posts that move a session to another week, deletes,
erasure and Redis flushed; learners never see others' ids; every bad query is a 400."""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from localmode.servers import free_port
from service.app import create_app
from service.domain.model import PAST_WEEKS, week_of
from service.http.schemas import IsoWeek
from service.settings import Settings
from tests.faults.support import until
from tests.integration.support import Api, Backends, new_id
from tests.integration.test_accounts import assert_error
from tests.integration.test_admin import staff_of

NOW_MS = time.time_ns() // 1_000_000
CURRENT = week_of(NOW_MS)
WEEK_MS = 7 * 86_400_000


@pytest.fixture
async def capturing(aiohttp_client: AiohttpClient, settings: Settings) -> Api:
    """The service in this process, reading the table's stream. Not also as ``scripts/run``, as the course
    views' tests do: that process reads every test's stream records, and behind the busiest of them it
    lags past these tests' patience."""
    return Api(await aiohttp_client(create_app(dataclasses.replace(settings, change_capture=True))))


def at(weeks_ago: int) -> str:
    """An instant in the ISO week ``weeks_ago`` before the current one (its Monday noon, or now if sooner)."""
    monday_noon = (7 * (CURRENT - weeks_ago) - 3) * 86_400_000 + 43_200_000
    instant = min(monday_noon, NOW_MS - 1000)
    return datetime.datetime.fromtimestamp(instant / 1000, datetime.UTC).isoformat()


def session(modules: int, score: float, weeks_ago: int = 0, session_id: str | None = None) -> dict[str, Any]:
    """A session without module results: it earns 10 x modules x score / 100 points."""
    return {
        "sessionId": session_id or new_id(),
        "totalModulesStudied": modules,
        "averageScore": score,
        "timeStudied": 10,
        "completedAt": at(weeks_ago),
    }


def ranked(board: list[tuple[str, int]]) -> list[tuple[int, int, str]]:
    """(rank, points, user) with competition ranks: one more than how many have more points."""
    return [(1 + sum(1 for _, other in board if other > points), points, user) for user, points in board]


def query(week: int | None) -> str:
    return "period=all" if week is None else f"period=week&week={IsoWeek.label(week)}"


def head(week: int | None, learners: int) -> dict[str, Any]:
    reply: dict[str, Any] = {"period": "all" if week is None else "week", "learnersCount": learners}
    if week is not None:
        reply["week"] = IsoWeek.label(week)
    return reply


def learners_view(board: list[tuple[str, int]], week: int | None, me: str, limit: int) -> dict[str, Any]:
    rows = ranked(board)
    reply = {**head(week, len(rows)), "items": [{"rank": rank, "points": points} for rank, points, _ in rows[:limit]]}
    mine = [{"rank": rank, "points": points} for rank, points, user in rows if user == me]
    if mine:
        reply["you"] = mine[0]
    return reply


async def staff_pages(api: Api, headers: dict[str, str], course: str, week: int | None, limit: int) -> list[Any]:
    pages = []
    cursor = ""
    while True:
        reply = await api.call(
            "GET", f"/admin/courses/{course}/leaderboard?{query(week)}&limit={limit}{cursor}", headers=headers
        )
        assert reply.status == 200, reply.body
        page = dict(reply.json)
        following = page.pop("nextCursor", None)
        pages.append(page)
        if following is None:
            return pages
        cursor = f"&cursor={following}"


async def board_exact(
    api: Api, staff: dict[str, str], backends: Backends, users: list[str], course: str, *, week: int | None
) -> bool:
    """Every learner's view (top 3 and their place) and the staff's pages of 2 equal DynamoDB's board."""
    truth = await backends.board(users, course, week)
    for user in users:
        reply = await api.call("GET", f"/courses/{course}/leaderboard?{query(week)}&limit=3", user=user)
        if (reply.status, reply.json) != (200, learners_view(truth, week, user, 3)):
            return False
    pages = await staff_pages(api, staff, course, week, 2)
    expected_rows = [{"rank": rank, "points": points, "userId": user} for rank, points, user in ranked(truth)]
    chunks = [expected_rows[i : i + 2] for i in range(0, len(expected_rows), 2)] or [[]]
    return pages == [{**head(week, len(truth)), "items": chunk} for chunk in chunks]


async def test_boards_follow_writes_re_posts_across_weeks_deletes_erasure_and_flushes(
    capturing: Api, backends: Backends
) -> None:
    api = capturing
    staff = await staff_of(api)
    course, users = new_id(), [new_id() for _ in range(6)]
    await staff.teach(api, course)
    weeks = [None, CURRENT, CURRENT - 1, CURRENT - PAST_WEEKS]
    for week in weeks:
        assert await board_exact(api, staff.teacher, backends, users, course, week=week)
    moved = new_id()
    # Ties (users 0 and 1), zero points (user 5), sessions in several weeks.
    for user, body in [
        (users[0], session(2, 50)),
        (users[1], session(1, 100, weeks_ago=1)),
        (users[2], session(3, 90)),
        (users[2], session(1, 40, weeks_ago=PAST_WEEKS)),
        (users[3], session(4, 25, weeks_ago=1, session_id=moved)),
        (users[4], session(5, 66.66)),
        (users[5], session(0, 0)),
        (users[5], session(7, 0, weeks_ago=1)),
    ]:
        assert (await api.post(user, course, body)).status == 201

    async def settled() -> bool:
        return all([await board_exact(api, staff.teacher, backends, users, course, week=week) for week in weeks])

    await until(settled, within=10)
    assert ranked(await backends.board(users, course))[:2] == [(1, 33, users[4]), (2, 31, users[2])]

    # The session moves to the current week, worth more; a learner's only session goes; Redis is flushed.
    assert (await api.post(users[3], course, session(9, 100, session_id=moved))).status == 200
    gone = session(1, 10)
    assert (await api.post(users[0], course, gone)).status == 201
    assert (await api.call("DELETE", f"/courses/{course}/sessions/{gone['sessionId']}", user=users[0])).status == 204
    await backends.redis.flushdb()
    await until(settled, within=10)
    assert (await backends.board(users, course, CURRENT - 1))[0] == (users[1], 10)
    assert users[3] not in dict(await backends.board(users, course, CURRENT - 1))

    assert (await api.call("DELETE", f"/admin/users/{users[2]}", headers=staff.admin)).status == 204
    await until(settled, within=10)
    assert users[2] not in dict(await backends.board(users, course, CURRENT - PAST_WEEKS))


async def test_a_learner_without_a_session_has_no_place_and_an_empty_board_is_a_200(capturing: Api) -> None:
    api = capturing
    course, learner, outsider = new_id(), new_id(), new_id()
    empty = await api.call("GET", f"/courses/{course}/leaderboard", user=outsider)
    assert (empty.status, empty.json) == (200, {"period": "all", "learnersCount": 0, "items": []})
    assert (await api.post(learner, course, session(1, 50))).status == 201

    async def seen() -> bool:
        reply = await api.call("GET", f"/courses/{course}/leaderboard?period=week", user=outsider)
        return (reply.status, reply.json) == (200, {**head(CURRENT, 1), "items": [{"rank": 1, "points": 5}]})

    await until(seen, within=10)
    last_week = await api.call("GET", f"/courses/{course}/leaderboard?{query(CURRENT - 1)}", user=learner)
    assert last_week.json == {**head(CURRENT - 1, 0), "items": []}


async def test_only_the_course_s_teachers_and_admins_see_the_full_ranking(api: Api) -> None:
    staff = await staff_of(api)
    course = new_id()
    path = f"/admin/courses/{course}/leaderboard"
    assert_error(await api.call("GET", path, headers=staff.learner), 403, "forbidden")
    assert_error(await api.call("GET", path, user=new_id()), 401, "unauthenticated")
    assert_error(await api.call("GET", path, headers=staff.teacher), 403, "forbidden")
    await staff.teach(api, course)
    for headers in (staff.teacher, staff.admin):
        assert (await api.call("GET", path, headers=headers)).json == {**head(None, 0), "items": []}


BAD_QUERIES = [
    "limit=0",
    "limit=101",
    "limit=ten",
    "period=month",
    "period=",
    "period=week&week=2026-49",
    "period=week&week=2026-W54",
    "period=week&week=2026-W00",
    "period=week&week=W49",
    f"period=week&week={IsoWeek.label(CURRENT + 1)}",
    f"period=week&week={IsoWeek.label(CURRENT - PAST_WEEKS - 1)}",
    f"week={IsoWeek.label(CURRENT)}",
    f"period=all&week={IsoWeek.label(CURRENT)}",
]


@pytest.mark.parametrize("bad", BAD_QUERIES)
async def test_a_bad_leaderboard_query_is_a_400(api: Api, bad: str) -> None:
    reply = await api.call("GET", f"/courses/{new_id()}/leaderboard?{bad}", user=new_id())
    assert_error(reply, 400, "validation_error")


async def test_every_bad_staff_leaderboard_query_is_a_400(api: Api) -> None:
    staff = await staff_of(api)  # one account for all of them: each costs the user pool several calls
    for bad in [*BAD_QUERIES, "cursor=bm90LWEtY3Vyc29y", "cursor="]:
        reply = await api.call("GET", f"/admin/courses/{new_id()}/leaderboard?{bad}", headers=staff.admin)
        assert reply.status == 400, bad
        assert_error(reply, 400, "validation_error")


async def test_a_staff_cursor_names_one_course_one_period_and_one_week(capturing: Api) -> None:
    api = capturing
    staff = await staff_of(api)
    course, other = new_id(), new_id()
    for user in (new_id(), new_id()):
        assert (await api.post(user, course, session(1, 50, weeks_ago=1))).status == 201
    path = f"/admin/courses/{course}/leaderboard?limit=1"

    async def two() -> bool:
        return bool((await api.call("GET", path, headers=staff.admin)).json["learnersCount"] == 2)

    await until(two, within=10)
    cursor = (await api.call("GET", path, headers=staff.admin)).json["nextCursor"]
    for elsewhere in (f"/admin/courses/{other}/leaderboard?", f"/admin/courses/{course}/leaderboard?period=week&"):
        reply = await api.call("GET", f"{elsewhere}limit=1&cursor={cursor}", headers=staff.admin)
        assert_error(reply, 400, "validation_error")
    second = await api.call("GET", f"{path}&cursor={cursor}", headers=staff.admin)
    assert (second.status, len(second.json["items"]), "nextCursor" in second.json) == (200, 1, False)

    # A week's pages go on with that week, even when the next page names none (as after a Monday).
    weekly = await api.call("GET", f"{path}&{query(CURRENT - 1)}", headers=staff.admin)
    cursor = weekly.json["nextCursor"]
    following = await api.call("GET", f"{path}&period=week&cursor={cursor}", headers=staff.admin)
    assert (following.status, following.json["week"], len(following.json["items"])) == (
        200,
        IsoWeek.label(CURRENT - 1),
        1,
    )
    assert_error(
        await api.call("GET", f"{path}&{query(CURRENT)}&cursor={cursor}", headers=staff.admin), 400, "validation_error"
    )


async def test_without_redis_a_board_is_ranked_from_the_roster_as_exactly(
    aiohttp_client: AiohttpClient, settings: Settings, capturing: Api, backends: Backends
) -> None:
    course, users = new_id(), [new_id() for _ in range(5)]
    for index, user in enumerate(users):
        assert (await capturing.post(user, course, session(index, 40, weeks_ago=index % 2))).status == 201

    async def settled() -> bool:
        reply = await capturing.call("GET", f"/courses/{course}/leaderboard", user=users[0])
        return bool(reply.json["learnersCount"] == len(users))

    await until(settled, within=10)
    served = {
        week: (await capturing.call("GET", f"/courses/{course}/leaderboard?{query(week)}", user=users[3])).json
        for week in (None, CURRENT, CURRENT - 1)
    }
    unreachable = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    without = Api(await aiohttp_client(create_app(unreachable)))
    for week, reply in served.items():
        fallback = await without.call("GET", f"/courses/{course}/leaderboard?{query(week)}", user=users[3])
        assert (fallback.status, fallback.json) == (200, reply)
        assert reply == learners_view(await backends.board(users, course, week), week, users[3], 10)
