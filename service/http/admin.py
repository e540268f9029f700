"""The views beyond one learner (``/admin``): a course's figures and learners, one learner's
stats as they see them, and erasure. Teachers and admins read; only admins erase."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import keys
from service.domain.errors import ValidationFailed
from service.domain.model import CourseTotals
from service.dynamodb.codec import ROSTER_SHARDS
from service.http.contract import Inputs, Reply, endpoint
from service.http.courses import (
    COURSE_STATS_REPLY,
    SESSION_PAGE_REPLY,
    SESSION_REPLY,
    course_stats,
    one_session,
    session_list,
)
from service.http.deadlines import ANSWER_SHARE
from service.http.schemas import (
    CourseFiguresResponse,
    CoursePath,
    ErasureStatusResponse,
    LearnerCoursePath,
    LearnerPage,
    LearnerSessionPath,
    PageQuery,
    UserPath,
)

STAFF = frozenset({"teacher", "admin"})
_LEARNER_COURSE = LearnerCoursePath()
_READ_ERRORS = (400, 401, 403, 404, 503)


def _sums(totals: CourseTotals) -> dict[str, Any]:
    """The fields of ``CourseStatsResponse``, by attribute."""
    return {
        "modules": totals.modules,
        "average_score_cents": totals.average_score_cents,
        "time_ms": totals.time_ms,
        "sessions": totals.sessions,
    }


@endpoint(
    operation_id="getCourseFigures",
    summary="Fetches a course's figures over all of its learners",
    tag="admin",
    roles=STAFF,
    path=CoursePath(),
    responses={200: (CourseFiguresResponse(), "Sums over every learner's sessions in the course.")},
    errors=_READ_ERRORS,
)
async def get_course_figures(request: web.Request, inputs: Inputs) -> Reply:
    figures = await request.app[keys.STATS].course_figures(inputs.params["course_id"])
    return Reply(200, {**_sums(figures.totals), "learners": figures.learners})


def _roster_position(raw: str) -> tuple[int, str | None]:
    shard, _, after = raw.partition(":")
    if not shard.isdigit() or int(shard) >= ROSTER_SHARDS:
        # Sealed by this service, so only a change of ROSTER_SHARDS between pages gets here.
        raise ValidationFailed("cursor is not valid", {"cursor": "not a cursor of this list"})
    return int(shard), after or None


@endpoint(
    operation_id="listCourseLearners",
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
    after = (0, None) if params["cursor"] is None else _roster_position(cursors.open(scope, params["cursor"]))
    rows, following = await request.app[keys.STATS].learners(course_id, params["limit"], after)
    page: dict[str, object] = {"items": [{**_sums(row.totals), "user_id": row.user_id} for row in rows]}
    if following is not None:
        page["next_cursor"] = cursors.seal(scope, f"{following[0]}:{following[1] or ''}")
    return Reply(200, page)


get_learner_course = endpoint(
    operation_id="getLearnerCourseStats",
    summary="Fetches a learner's course statistics, as the learner sees them",
    tag="admin",
    roles=STAFF,
    path=_LEARNER_COURSE,
    responses={200: COURSE_STATS_REPLY},
    errors=_READ_ERRORS,
)(course_stats)

list_learner_sessions = endpoint(
    operation_id="listLearnerSessions",
    summary="Lists a learner's sessions in a course, as the learner sees them",
    tag="admin",
    roles=STAFF,
    path=_LEARNER_COURSE,
    query=PageQuery(),
    responses={200: SESSION_PAGE_REPLY},
    errors=(400, 401, 403, 503),
)(session_list)

get_learner_session = endpoint(
    operation_id="getLearnerSession",
    summary="Fetches one of a learner's sessions, as the learner sees it",
    tag="admin",
    roles=STAFF,
    path=LearnerSessionPath(),
    responses={200: SESSION_REPLY},
    errors=_READ_ERRORS,
)(one_session)


_ADMIN = frozenset({"admin"})
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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/courses/{courseId}", get_course_figures, allow_head=False)
    app.router.add_get("/admin/courses/{courseId}/learners", list_course_learners, allow_head=False)
    app.router.add_get("/admin/users/{userId}/courses/{courseId}", get_learner_course, allow_head=False)
    app.router.add_get("/admin/users/{userId}/courses/{courseId}/sessions", list_learner_sessions, allow_head=False)
    app.router.add_get(
        "/admin/users/{userId}/courses/{courseId}/sessions/{sessionId}", get_learner_session, allow_head=False
    )
    app.router.add_delete("/admin/users/{userId}", erase_user)
    app.router.add_get("/admin/users/{userId}/erasure", get_erasure, allow_head=False)
