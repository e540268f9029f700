"""The stats routes of API v1: a learner's sessions and course aggregate."""

from __future__ import annotations

from aiohttp import web

from service import keys
from service.domain.model import WriteOutcome
from service.http.batch import record_batch
from service.http.contract import MAX_BATCH_BODY_BYTES, Inputs, Reply, endpoint
from service.http.schemas import (
    COURSE_STATS,
    SESSION_BODY,
    SESSION_STATS,
    BatchBody,
    BatchResponse,
    CoursePath,
    ModuleBreakdown,
    PageQuery,
    PointsResponse,
    SessionPage,
    SessionPath,
)

_COURSE = CoursePath()
_SESSION = SessionPath()


@endpoint(
    operation_id="postSession",
    summary="Persists a session study event",
    learner=True,
    path=_COURSE,
    body=SESSION_BODY,
    responses={
        201: (SESSION_STATS, "Session created."),
        200: (SESSION_STATS, "Session replaced, or posted again unchanged."),
    },
    errors=(400, 401, 403, 413, 415, 503),
)
async def post_session(request: web.Request, inputs: Inputs) -> Reply:
    user_id, course_id = inputs.params["user_id"], inputs.params["course_id"]
    outcome, stored = await request.app[keys.STATS].record(user_id, course_id, inputs.body)
    location = f"/courses/{course_id}/sessions/{stored.session_id}"
    return Reply(201 if outcome is WriteOutcome.CREATED else 200, stored, {"Location": location})


# The learner's reads: ``service.http.admin`` serves the same to teachers and admins, by user id.
COURSE_STATS_REPLY = (COURSE_STATS, "Aggregate over all of the user's sessions in the course.")
SESSION_REPLY = (SESSION_STATS, "The session as stored.")
SESSION_PAGE_REPLY = (SessionPage(), "A page of sessions in session-id order; nextCursor fetches the next.")
MODULES_REPLY = (ModuleBreakdown(), "The results of the user's sessions in the course, by module type.")


async def course_stats(request: web.Request, inputs: Inputs) -> Reply:
    params = inputs.params
    return Reply(200, await request.app[keys.STATS].course(params["user_id"], params["course_id"]))


async def module_breakdown(request: web.Request, inputs: Inputs) -> Reply:
    params = inputs.params
    totals = await request.app[keys.STATS].course(params["user_id"], params["course_id"], by_type=True)
    return Reply(200, {"items": totals.by_type})


async def one_session(request: web.Request, inputs: Inputs) -> Reply:
    params = inputs.params
    stats = await request.app[keys.STATS].session(params["user_id"], params["course_id"], params["session_id"])
    return Reply(200, stats)


async def session_list(request: web.Request, inputs: Inputs) -> Reply:
    params = inputs.params
    user_id, course_id = params["user_id"], params["course_id"]
    cursors, scope = request.app[keys.CURSORS], f"sessions:{user_id}:{course_id}"
    after = cursors.position(scope, params["cursor"])
    items, next_after = await request.app[keys.STATS].sessions(user_id, course_id, params["limit"], after)
    return Reply(200, cursors.page(scope, items, next_after))


get_course = endpoint(
    operation_id="getCourseStats",
    summary="Fetches course lifetime statistics",
    learner=True,
    path=_COURSE,
    responses={200: COURSE_STATS_REPLY},
    errors=(400, 401, 403, 404, 503),
)(course_stats)

get_modules = endpoint(
    operation_id="getModuleBreakdown",
    summary="Fetches the learner's module results in a course, by module type",
    learner=True,
    path=_COURSE,
    responses={200: MODULES_REPLY},
    errors=(400, 401, 403, 404, 503),
)(module_breakdown)

get_session = endpoint(
    operation_id="getSession",
    summary="Fetches a single study session",
    learner=True,
    path=_SESSION,
    responses={200: SESSION_REPLY},
    errors=(400, 401, 403, 404, 503),
)(one_session)

list_sessions = endpoint(
    operation_id="listSessions",
    summary="Lists the learner's sessions in a course, a page at a time",
    learner=True,
    path=_COURSE,
    query=PageQuery(),
    responses={200: SESSION_PAGE_REPLY},
    errors=(400, 401, 403, 503),
)(session_list)


@endpoint(
    operation_id="deleteSession",
    summary="Deletes a session: gone from the session routes and every aggregate",
    learner=True,
    path=_SESSION,
    responses={204: (None, "Deleted.")},
    errors=(400, 401, 403, 404, 503),
)
async def delete_session(request: web.Request, inputs: Inputs) -> Reply:
    params = inputs.params
    await request.app[keys.STATS].delete(params["user_id"], params["course_id"], params["session_id"])
    return Reply(204)


@endpoint(
    operation_id="getPoints",
    summary="Fetches the learner's points over every course",
    learner=True,
    responses={200: (PointsResponse(), "The points of every session of the user, in every course.")},
    errors=(400, 401, 403, 404, 503),
)
async def get_points(request: web.Request, inputs: Inputs) -> Reply:
    return Reply(200, await request.app[keys.STATS].points(inputs.params["user_id"]))


@endpoint(
    operation_id="postSessionBatch",
    summary="Persists up to 100 sessions, each as POST /courses/{courseId} would",
    learner=True,
    path=_COURSE,
    body=BatchBody(),
    max_body=MAX_BATCH_BODY_BYTES,
    responses={200: (BatchResponse(), "One result per item, in order; a refused item never blocks the others.")},
    errors=(400, 401, 403, 413, 415, 503),
)
async def post_batch(request: web.Request, inputs: Inputs) -> Reply:
    user_id, course_id = inputs.params["user_id"], inputs.params["course_id"]
    return Reply(200, {"results": await record_batch(request, user_id, course_id, inputs.body["sessions"])})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/points", get_points, allow_head=False)
    app.router.add_post("/courses/{courseId}", post_session)
    app.router.add_get("/courses/{courseId}", get_course, allow_head=False)
    app.router.add_get("/courses/{courseId}/modules", get_modules, allow_head=False)
    app.router.add_get("/courses/{courseId}/sessions", list_sessions, allow_head=False)
    app.router.add_post("/courses/{courseId}/sessions/batch", post_batch)
    # "batch" is the batch route's, for every method: OPTIONS and 405s name only its POST.
    one = app.router.add_resource("/courses/{courseId}/sessions/{sessionId:(?!batch$)[^{}/]+}")
    one.add_route("GET", get_session)
    one.add_route("DELETE", delete_session)
