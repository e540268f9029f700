"""The views beyond one learner (``/admin``): a course's figures and learners, one learner's
stats as they see them, and erasure. Teachers and admins read; only admins erase."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from service import keys
from service.domain.errors import ValidationFailed
from service.domain.model import CourseTotals
from service.dynamodb.codec import ROSTER_SHARDS
from service.http.accounts import accounts_of
from service.http.contract import Inputs, Reply, endpoint
from service.http.courses import (
    COURSE_STATS_REPLY,
    MODULES_REPLY,
    SESSION_PAGE_REPLY,
    SESSION_REPLY,
    course_stats,
    module_breakdown,
    one_session,
    session_list,
)
from service.http.deadlines import ANSWER_SHARE
from service.http.schemas import (
    CourseBody,
    CourseFiguresResponse,
    CourseModuleBreakdown,
    CoursePage,
    CoursePath,
    CourseResponse,
    ErasureStatusResponse,
    LearnerPage,
    LearnerSessionPath,
    PageQuery,
    UserCoursePath,
    UserPath,
)

STAFF = frozenset({"teacher", "admin"})
_ADMIN = frozenset({"admin"})
_COURSE = CourseResponse()
_USER_COURSE = UserCoursePath()
_READ_ERRORS = (400, 401, 403, 404, 503)


def _sums(totals: CourseTotals) -> dict[str, Any]:
    """The fields of ``CourseStatsResponse``, by attribute."""
    return {
        "modules": totals.modules,
        "average_score_cents": totals.average_score_cents,
        "time_ms": totals.time_ms,
        "sessions": totals.sessions,
        "points": totals.points,
    }


@endpoint(
    operation_id="getCourseFigures",
    teaching=True,
    summary="Fetches a course's figures over all of its learners",
    tag="admin",
    roles=STAFF,
    path=CoursePath(),
    responses={200: (CourseFiguresResponse(), "Sums over every learner's sessions in the course.")},
    errors=_READ_ERRORS,
)
async def get_course_figures(request: web.Request, inputs: Inputs) -> Reply:
    course_id = inputs.params["course_id"]
    # The title is read beside the figures, not after them.
    title = asyncio.ensure_future(request.app[keys.COURSES].title(course_id))
    try:
        figures = await request.app[keys.STATS].course_figures(course_id)
    except BaseException:
        title.cancel()
        raise
    reply = {**_sums(figures.totals), "learners": figures.learners}
    if (registered := await title) is not None:
        reply["title"] = registered
    return Reply(200, reply)


@endpoint(
    operation_id="getCourseModuleBreakdown",
    teaching=True,
    summary="Fetches a course's module results over all of its learners, by module type",
    tag="admin",
    roles=STAFF,
    path=CoursePath(),
    responses={200: (CourseModuleBreakdown(), "Every learner's results in the course, by module type.")},
    errors=_READ_ERRORS,
)
async def get_course_modules(request: web.Request, inputs: Inputs) -> Reply:
    figures = await request.app[keys.STATS].course_figures(inputs.params["course_id"], by_type=True)
    learners = dict(figures.type_entries)
    items = [
        {
            "module_type": kind.module_type,
            "results": kind.results,
            "time_ms": kind.time_ms,
            "average_score_cents": kind.average_score_cents,
            "learners": learners.get(kind.module_type, 0),
        }
        for kind in figures.totals.by_type
    ]
    return Reply(200, {"items": items})


def _roster_position(raw: str) -> tuple[int, str | None]:
    shard, _, after = raw.partition(":")
    if not shard.isdigit() or int(shard) >= ROSTER_SHARDS:
        # Sealed by this service, so only a change of ROSTER_SHARDS between pages gets here.
        raise ValidationFailed("cursor is not valid", {"cursor": "not a cursor of this list"})
    return int(shard), after or None


@endpoint(
    operation_id="listCourseLearners",
    teaching=True,
    summary="Lists a course's learners with their figures, a page at a time",
    tag="admin",
    roles=STAFF,
    path=CoursePath(),
    query=PageQuery(),
    responses={200: (LearnerPage(), "A page of the learners with a session; nextCursor fetches the next.")},
    errors=(400, 401, 403, 503),
)
async def list_course_learners(request: web.Request, inputs: Inputs) -> Reply:
    params = inputs.params
    course_id = params["course_id"]
    cursors, scope = request.app[keys.CURSORS], f"learners:{course_id}"
    position = cursors.position(scope, params["cursor"])
    after = (0, None) if position is None else _roster_position(position)
    rows, following = await request.app[keys.STATS].learners(course_id, params["limit"], after)
    items = [{**_sums(row.totals), "user_id": row.user_id} for row in rows]
    resume = None if following is None else f"{following[0]}:{following[1] or ''}"
    return Reply(200, cursors.page(scope, items, resume))


get_learner_course = endpoint(
    operation_id="getLearnerCourseStats",
    teaching=True,
    summary="Fetches a learner's course statistics, as the learner sees them",
    tag="admin",
    roles=STAFF,
    path=_USER_COURSE,
    responses={200: COURSE_STATS_REPLY},
    errors=_READ_ERRORS,
)(course_stats)

get_learner_modules = endpoint(
    operation_id="getLearnerModuleBreakdown",
    teaching=True,
    summary="Fetches a learner's module results in a course by module type, as the learner sees them",
    tag="admin",
    roles=STAFF,
    path=_USER_COURSE,
    responses={200: MODULES_REPLY},
    errors=_READ_ERRORS,
)(module_breakdown)

list_learner_sessions = endpoint(
    operation_id="listLearnerSessions",
    teaching=True,
    summary="Lists a learner's sessions in a course, as the learner sees them",
    tag="admin",
    roles=STAFF,
    path=_USER_COURSE,
    query=PageQuery(),
    responses={200: SESSION_PAGE_REPLY},
    errors=(400, 401, 403, 503),
)(session_list)

get_learner_session = endpoint(
    operation_id="getLearnerSession",
    teaching=True,
    summary="Fetches one of a learner's sessions, as the learner sees it",
    tag="admin",
    roles=STAFF,
    path=LearnerSessionPath(),
    responses={200: SESSION_REPLY},
    errors=_READ_ERRORS,
)(one_session)


_ERASURE_STATUS = ErasureStatusResponse()


def _erasure_path(user_id: str) -> str:
    return f"/admin/users/{user_id}/erasure"


@endpoint(
    operation_id="eraseUser",
    summary="Erases every session and figure of a learner (right to erasure)",
    tag="admin",
    roles=_ADMIN,
    path=UserPath(),
    responses={
        204: (None, "Erased: no route serves anything of theirs any more. Safe to repeat."),
        202: (
            _ERASURE_STATUS,
            "Under way, past this request's deadline; Location says when it has finished. "
            "Sending this request again joins or resumes it.",
        ),
    },
    errors=(400, 401, 403, 503),
)
async def erase_user(request: web.Request, inputs: Inputs) -> Reply:
    user_id = inputs.params["user_id"]
    within = request.app[keys.SETTINGS].request_deadline_seconds * ANSWER_SHARE
    if await request.app[keys.ERASURES].erase(user_id, within):
        return Reply(204)
    return Reply(202, {"status": "in_progress"}, {"Location": _erasure_path(user_id)})


@endpoint(
    operation_id="getErasure",
    summary="Tells whether a learner's erasure has finished",
    tag="admin",
    roles=_ADMIN,
    path=UserPath(),
    responses={
        200: (
            _ERASURE_STATUS,
            "done: nothing of the learner's is stored. in_progress: some is; if that lasts, "
            "the task erasing it stopped, and DELETE /admin/users/{userId} resumes it.",
        )
    },
    errors=(400, 401, 403, 503),
)
async def get_erasure(request: web.Request, inputs: Inputs) -> Reply:
    stored = await request.app[keys.STORE].holds_items(inputs.params["user_id"])
    return Reply(200, {"status": "in_progress" if stored else "done"})


@endpoint(
    operation_id="putCourse",
    summary="Registers a course, or renames it",
    tag="admin",
    roles=_ADMIN,
    path=CoursePath(),
    body=CourseBody(),
    responses={201: (_COURSE, "Registered."), 200: (_COURSE, "Renamed.")},
    errors=(400, 401, 403, 413, 415, 503),
)
async def put_course(request: web.Request, inputs: Inputs) -> Reply:
    created, course = await request.app[keys.COURSES].register(inputs.params["course_id"], inputs.body["title"])
    return Reply(201 if created else 200, course)


async def _assign(request: web.Request, inputs: Inputs, *, teaches: bool) -> Reply:
    user_id, course_id = inputs.params["user_id"], inputs.params["course_id"]
    if teaches and "teacher" not in await accounts_of(request).roles(user_id):
        message = "this user lacks the teacher role: give it with PUT /admin/users/{userId}/roles"
        raise ValidationFailed(message, {"userId": message})
    await request.app[keys.COURSES].assign(course_id, user_id, teaches=teaches)
    return Reply(204)


async def assign_teacher(request: web.Request, inputs: Inputs) -> Reply:
    return await _assign(request, inputs, teaches=True)


async def remove_teacher(request: web.Request, inputs: Inputs) -> Reply:
    return await _assign(request, inputs, teaches=False)


_TEACHER_ERRORS = (400, 401, 403, 404, 503)
put_teacher = endpoint(
    operation_id="putCourseTeacher",
    summary="Makes a user with the teacher role a teacher of a registered course",
    tag="admin",
    roles=_ADMIN,
    path=_USER_COURSE,
    responses={204: (None, "They teach it (also if they did already).")},
    errors=_TEACHER_ERRORS,
)(assign_teacher)
delete_teacher = endpoint(
    operation_id="deleteCourseTeacher",
    summary="Stops a user teaching a registered course",
    tag="admin",
    roles=_ADMIN,
    path=_USER_COURSE,
    responses={204: (None, "They do not teach it (also if they did not).")},
    errors=_TEACHER_ERRORS,
)(remove_teacher)


@endpoint(
    operation_id="listCourses",
    summary="Lists registered courses: all of them for an admin, the ones they teach for a teacher",
    tag="admin",
    roles=STAFF,
    query=PageQuery(),
    responses={200: (CoursePage(), "A page of courses in id order; nextCursor fetches the next.")},
    errors=(400, 401, 403, 503),
)
async def list_courses(request: web.Request, inputs: Inputs) -> Reply:
    params = inputs.params
    identity = params["identity"]
    cursors, scope = request.app[keys.CURSORS], f"courses:{identity.user_id}"
    after = cursors.position(scope, params["cursor"])
    courses, following = await request.app[keys.COURSES].page(identity, params["limit"], after)
    return Reply(200, cursors.page(scope, courses, following))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/courses", list_courses, allow_head=False)
    app.router.add_get("/admin/courses/{courseId}", get_course_figures, allow_head=False)
    app.router.add_put("/admin/courses/{courseId}", put_course)
    app.router.add_put("/admin/courses/{courseId}/teachers/{userId}", put_teacher)
    app.router.add_delete("/admin/courses/{courseId}/teachers/{userId}", delete_teacher)
    app.router.add_get("/admin/courses/{courseId}/learners", list_course_learners, allow_head=False)
    app.router.add_get("/admin/courses/{courseId}/modules", get_course_modules, allow_head=False)
    app.router.add_get("/admin/users/{userId}/courses/{courseId}", get_learner_course, allow_head=False)
    app.router.add_get("/admin/users/{userId}/courses/{courseId}/modules", get_learner_modules, allow_head=False)
    app.router.add_get("/admin/users/{userId}/courses/{courseId}/sessions", list_learner_sessions, allow_head=False)
    app.router.add_get(
        "/admin/users/{userId}/courses/{courseId}/sessions/{sessionId}", get_learner_session, allow_head=False
    )
    app.router.add_delete("/admin/users/{userId}", erase_user)
    app.router.add_get("/admin/users/{userId}/erasure", get_erasure, allow_head=False)
