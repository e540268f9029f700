"""The three stats routes (API v1)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web
from aiohttp_apigami import docs, headers_schema, request_schema, response_schema
from marshmallow import ValidationError

from service import keys
from service.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from service.model import SessionStats, WriteOutcome, score_to_cents
from service.schemas import (
    SESSION_BODY,
    USER_HEADER,
    CourseStatsResponse,
    ErrorResponse,
    SessionStatsResponse,
    canonical_uuid,
    field_messages,
)

MAX_BODY_BYTES = 64 * 1024

_ERRORS = {
    400: {"schema": ErrorResponse, "description": "Invalid X-User-Id, id in the path, or body."},
    404: {"schema": ErrorResponse, "description": "Not found for this user and course."},
    503: {"schema": ErrorResponse, "description": "Database unavailable; see Retry-After."},
}
_BODY_ERRORS = {
    **_ERRORS,
    413: {"schema": ErrorResponse, "description": "Body over 64 KiB."},
    415: {"schema": ErrorResponse, "description": "Body is not application/json."},
}


def _user_id(request: web.Request) -> str:
    user_id = canonical_uuid(request.headers.get("X-User-Id"))
    if user_id is None:
        raise ValidationFailed(
            "X-User-Id header must be a UUID", {"X-User-Id": "Required; must be the learner's UUID."}
        )
    return user_id


def _path_id(request: web.Request, name: str) -> str:
    value = canonical_uuid(request.match_info[name])
    if value is None:
        raise ValidationFailed(f"{name} in the path must be a UUID", {name: "Must be a UUID."})
    return value


def _json_response(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json" and not request.content_type.endswith("+json"):
        raise UnsupportedMediaType("Content-Type must be application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body must be at most {MAX_BODY_BYTES} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"body must be at most {MAX_BODY_BYTES} bytes") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationFailed("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationFailed("body must be a JSON object")
    return data


@docs(tags=["stats"], summary="Persists a session study event", responses=_BODY_ERRORS)
@headers_schema(USER_HEADER)
@request_schema(SESSION_BODY, required=True)
@response_schema(SessionStatsResponse, 201, description="Session created.")
@response_schema(SessionStatsResponse, 200, description="Session replaced, or posted again unchanged.")
async def post_session(request: web.Request) -> web.Response:
    user_id = _user_id(request)
    course_id = _path_id(request, "courseId")
    # The same schema instance that the OpenAPI document is generated from.
    try:
        body = SESSION_BODY.load(await _json_object(request))
    except ValidationError as exc:
        raise ValidationFailed("invalid session stats", field_messages(exc)) from None
    stats = SessionStats(
        session_id=body.get("sessionId") or str(uuid.uuid4()),
        modules=body["totalModulesStudied"],
        score_cents=score_to_cents(body["averageScore"]),
        time_ms=body["timeStudied"],
    )
    outcome, stored = await request.app[keys.STATS].record(user_id, course_id, stats)
    location = f"/courses/{course_id}/sessions/{stored.session_id}"
    status = 201 if outcome is WriteOutcome.CREATED else 200
    return _json_response(stored.to_json(), status, {"Location": location})


@docs(tags=["stats"], summary="Fetches course lifetime statistics", responses=_ERRORS)
@headers_schema(USER_HEADER)
@response_schema(CourseStatsResponse, 200, description="Aggregate over all of the user's sessions in the course.")
async def get_course(request: web.Request) -> web.Response:
    user_id = _user_id(request)
    course_id = _path_id(request, "courseId")
    totals = await request.app[keys.STATS].course(user_id, course_id)
    return _json_response(totals.to_json())


@docs(tags=["stats"], summary="Fetches a single study session", responses=_ERRORS)
@headers_schema(USER_HEADER)
@response_schema(SessionStatsResponse, 200, description="The session as stored.")
async def get_session(request: web.Request) -> web.Response:
    user_id = _user_id(request)
    course_id = _path_id(request, "courseId")
    session_id = _path_id(request, "sessionId")
    stats = await request.app[keys.STATS].session(user_id, course_id, session_id)
    return _json_response(stats.to_json())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/courses/{courseId}", post_session)
    app.router.add_get("/courses/{courseId}", get_course, allow_head=False)
    app.router.add_get("/courses/{courseId}/sessions/{sessionId}", get_session, allow_head=False)
