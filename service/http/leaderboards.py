"""Leaderboards (SPEC §8): the learner's top places and own rank, and the full ranking for
a course's teachers and admins."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from service import keys
from service.domain.errors import ValidationFailed
from service.domain.model import PAST_WEEKS, Board, week_of
from service.http.admin import STAFF
from service.http.contract import Inputs, Reply, endpoint
from service.http.schemas import (
    CoursePath,
    IsoWeek,
    LeaderboardQuery,
    LeaderboardResponse,
    StaffLeaderboardPage,
    StaffLeaderboardQuery,
)

_COURSE = CoursePath()


def board_week(params: dict[str, Any], now_ms: int | None = None) -> int | None:
    """The ISO week a query names (None: all time); the current week by default, never one to come
    nor one past the 12 before it."""
    week: int | None = params["week"]
    if params["period"] == "all":
        if week is not None:
            raise ValidationFailed("week is for period=week only", {"week": "Only with period=week."})
        return None
    current = week_of(time.time_ns() // 1_000_000 if now_ms is None else now_ms)
    if week is None:
        return current
    if week > current:
        raise ValidationFailed("week is still to come", {"week": "Must not be after the current ISO week."})
    if week < current - PAST_WEEKS:
        message = f"Must be the current ISO week or one of the {PAST_WEEKS} before it."
        raise ValidationFailed("week is too long ago", {"week": message})
    return week


def _reply(params: dict[str, Any], week: int | None, board: Board) -> dict[str, Any]:
    reply: dict[str, Any] = {"period": params["period"], "learners": board.learners, "items": board.standings}
    if week is not None:
        reply["week"] = IsoWeek.label(week)
    return reply


@endpoint(
    operation_id="getLeaderboard",
    summary="Fetches a course's top places by points, and the learner's own",
    learner=True,
    path=_COURSE,
    query=LeaderboardQuery(),
    responses={200: (LeaderboardResponse(), "The top places (without whose they are) and the caller's.")},
    errors=(400, 401, 403, 503),
)
async def get_leaderboard(request: web.Request, inputs: Inputs) -> Reply:
    params = inputs.params
    week = board_week(params)
    me = params["user_id"]
    board = await request.app[keys.STATS].leaderboard(params["course_id"], week, (0, params["limit"]), me)
    reply = _reply(params, week, board)
    if board.you is not None:
        reply["you"] = board.you
    return Reply(200, reply)


@endpoint(
    operation_id="listLeaderboard",
    teaching=True,
    summary="Lists a course's full ranking by points, with who holds each place, a page at a time",
    tag="admin",
    roles=STAFF,
    path=_COURSE,
    query=StaffLeaderboardQuery(),
    responses={200: (StaffLeaderboardPage(), "A page of the ranking; nextCursor fetches the next.")},
    errors=(400, 401, 403, 503),
)
async def list_leaderboard(request: web.Request, inputs: Inputs) -> Reply:
    params = inputs.params
    course_id, limit = params["course_id"], params["limit"]
    cursors, scope = request.app[keys.CURSORS], f"leaderboard:{course_id}:{params['period']}"
    # Sealed by this service: "<week>:<offset>", the week the first page ranked ('' for all time).
    named, _, offset = (cursors.position(scope, params["cursor"]) or ":0").partition(":")
    if named and params["week"] is None:
        # The pages of this week's board go on with it after a Monday has passed.
        params = {**params, "week": int(named)}
    week = board_week(params)
    if params["cursor"] is not None and named != ("" if week is None else str(week)):
        raise ValidationFailed("cursor of another week", {"cursor": "Not a cursor of this week's ranking."})
    board = await request.app[keys.STATS].leaderboard(course_id, week, (int(offset), limit))
    following = int(offset) + limit
    resume = f"{'' if week is None else week}:{following}" if following < board.learners else None
    return Reply(200, {**_reply(params, week, board), **cursors.page(scope, board.standings, resume)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/courses/{courseId}/leaderboard", get_leaderboard, allow_head=False)
    app.router.add_get("/admin/courses/{courseId}/leaderboard", list_leaderboard, allow_head=False)
