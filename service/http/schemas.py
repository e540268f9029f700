"""The wire contract, declared once: these marshmallow schemas validate every
request (headers, path ids, body), serialise every response, and generate the
OpenAPI document (``service.http.contract`` binds them to the routes).

JSON types are taken strictly: a boolean is not a number, a string is not a
number, and an integer field accepts no fractional part.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
import time
import uuid
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, missing, post_load, validate, validates_schema

from service import module_types
from service.domain.identity import ROLES
from service.domain.model import SCORE_SCALE, ModuleResult, SessionStats, score_to_cents

UUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

MAX_MODULES = 10_000
MAX_SCORE = 100
MAX_TIME_MS = 86_400_000


def canonical_uuid(value: object) -> str | None:
    """The lowercase canonical form of a hyphenated UUID, or None if it is not one."""
    if isinstance(value, str) and UUID_PATTERN.fullmatch(value):
        return value.lower()
    return None


class UUIDString(fields.String):
    default_error_messages = {"invalid": "Must be a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={"format": "uuid", **kwargs.pop("metadata", {})}, **kwargs)

    def parse(self, value: object) -> str:
        """The canonical form of ``value``, or this field's ``invalid`` error."""
        canonical = canonical_uuid(value)
        if canonical is None:
            raise self.make_error("invalid")
        return canonical

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return self.parse(value)


def _json_number(field: fields.Field, value: Any) -> int | float:
    # bool is a subclass of int in Python, but never a number in JSON.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise field.make_error("invalid")
    if isinstance(value, float) and not math.isfinite(value):
        raise field.make_error("invalid")
    return value


class StrictInteger(fields.Integer):
    default_error_messages = {"invalid": "Must be a whole number."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        number = _json_number(self, value)
        if isinstance(number, float) and not number.is_integer():
            raise self.make_error("invalid")
        return int(number)


class StrictNumber(fields.Float):
    default_error_messages = {"invalid": "Must be a number."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        try:
            return float(_json_number(self, value))
        except OverflowError:  # an integer too large for a float is out of any range
            raise self.make_error("invalid") from None


def _range(low: int, high: int, unit: str = "") -> validate.Range:
    return validate.Range(min=low, max=high, error=f"Must be between {low} and {high}{unit}.")


EARLIEST_COMPLETION = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
# How far ahead of this service's clock a completion time may be: clients' clocks drift.
COMPLETION_LEEWAY = datetime.timedelta(minutes=5)


class CompletedAt(fields.AwareDateTime):
    """An RFC 3339 time with a zone, converted to UTC ms since the epoch, from 2000 to 5 minutes from now;
    dumped as ``2026-12-01T10:00:00.000Z``."""

    default_error_messages = {
        "invalid": "Must be an RFC 3339 date and time, such as 2026-12-01T10:00:00Z.",
        "invalid_awareness": "Must carry a zone: Z or an offset such as +01:00.",
        "range": "Must be from 2000-01-01T00:00:00Z to 5 minutes from now.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:  # type: ignore[override]
        if not isinstance(value, str) or "T" not in value.upper():
            raise self.make_error("invalid")
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not EARLIEST_COMPLETION <= moment <= datetime.datetime.now(datetime.UTC) + COMPLETION_LEEWAY:
            raise self.make_error("range")
        return int(moment.timestamp() * 1000)

    @staticmethod
    def to_wire(value: Any) -> str:
        moment = datetime.datetime.fromtimestamp(int(value) / 1000, datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(value) % 1000:03d}Z"

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else self.to_wire(value)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


MAX_RESULTS = 200


class ModuleTypeId(fields.String):
    """A module type of the process's catalogue (``service.module_types``): a retired one is refused.
    The OpenAPI enum is the catalogue's (the metadata is read when the document is built)."""

    default_error_messages = {
        "invalid": "Must be a module type id.",
        "unknown": "Not a module type: {value}.",
        "retired": "Module type {value} is retired: it takes no new results.",
    }

    @property
    def metadata(self) -> dict[str, Any]:
        return {**self._metadata, "enum": list(module_types.current().active_ids)}

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._metadata = value

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        catalogue = module_types.current()
        if value not in catalogue.active_ids:
            raise self.make_error("retired" if value in catalogue.ids else "unknown", value=value[:50])
        return value


class ModuleResultBody(Schema):
    """One module's result in a session body; loads as :class:`ModuleResult`."""

    class Meta:
        unknown = RAISE

    moduleType = ModuleTypeId(required=True)
    score = StrictNumber(
        required=True, validate=_range(0, MAX_SCORE), metadata={"description": "A percentage kept to 2 decimal places."}
    )
    timeStudied = StrictInteger(
        required=True, validate=_range(0, MAX_TIME_MS, " milliseconds"), metadata={"description": "Milliseconds."}
    )
    moduleId = UUIDString(metadata={"description": "The platform's id of the module, when it has one."})

    @post_load
    def _to_result(self, data: dict[str, Any], **_: Any) -> ModuleResult:
        return ModuleResult(
            data["moduleType"], score_to_cents(data["score"]), data["timeStudied"], data.get("moduleId")
        )


_SUMMARY = ("totalModulesStudied", "averageScore", "timeStudied")


class SessionStatsBody(Schema):
    """A completed learning session's stats, as the platform posts them; loads as :class:`SessionStats`.

    With ``modules`` the three summary fields follow from the results (SPEC §7): each may be
    omitted, and one given must agree with them; without, all three are required."""

    class Meta:
        unknown = RAISE

    sessionId = UUIDString(metadata={"description": "Generated by the service when absent."})
    totalModulesStudied = StrictInteger(
        validate=_range(0, MAX_MODULES),
        metadata={"description": "Modules studied. Required without modules; with them, their number."},
    )
    averageScore = StrictNumber(
        validate=_range(0, MAX_SCORE),
        metadata={
            "description": "Average module score, a percentage kept to 2 decimal places. Required without "
            "modules; with them, stored as their mean score, and a given one must be within 0.01 of it."
        },
    )
    timeStudied = StrictInteger(
        validate=_range(0, MAX_TIME_MS, " milliseconds"),
        metadata={
            "description": "Time studied in milliseconds. Required without modules; with them, at least "
            "their total (their total when absent)."
        },
    )
    modules = fields.List(
        fields.Nested(ModuleResultBody),
        validate=validate.Length(1, MAX_RESULTS, error=f"Must hold 1 to {MAX_RESULTS} module results."),
        metadata={"description": f"1-{MAX_RESULTS} module results. A re-post without them leaves none."},
    )
    completedAt = CompletedAt(
        metadata={
            "description": "When the session was completed: RFC 3339 with a zone, from 2000 to 5 minutes from now. "
            "When absent, the time it was first stored; a re-post without it keeps the stored one."
        }
    )

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _summary_given(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        # The body as sent: a field refused on its own (modules included) has its own error already.
        if not isinstance(original, dict) or "modules" in original:
            return
        absent = [name for name in _SUMMARY if name not in original]
        if absent:
            raise ValidationError({name: ["Missing data for required field."] for name in absent})

    @post_load
    def _to_stats(self, data: dict[str, Any], **_: Any) -> SessionStats:
        session_id = data.get("sessionId") or str(uuid.uuid4())
        results: tuple[ModuleResult, ...] = tuple(data.get("modules", ()))
        if results:
            return _checked(data, SessionStats.of_results(session_id, results))
        return SessionStats(
            session_id,
            data["totalModulesStudied"],
            score_to_cents(data["averageScore"]),
            data["timeStudied"],
            completed_at_ms=data.get("completedAt"),
        )


def _checked(data: dict[str, Any], derived: SessionStats) -> SessionStats:
    """The session its results imply, after checking the given summary fields against it, with the
    body's completion time; a given ``timeStudied`` above the results' total is kept."""
    count, mean, total_time = derived.modules, derived.score_cents, derived.time_ms
    errors: dict[str, list[str]] = {}
    if data.get("totalModulesStudied", count) != count:
        errors["totalModulesStudied"] = [f"Must equal the number of module results, {count}."]
    if "averageScore" in data and abs(Decimal(repr(data["averageScore"])) * SCORE_SCALE - mean) > 1:
        errors["averageScore"] = [f"Must be within 0.01 of the module results' mean score, {mean / SCORE_SCALE}."]
    time_ms = data.get("timeStudied", total_time)
    if time_ms < total_time:
        errors["timeStudied"] = [f"Must be at least the module results' total time, {total_time} milliseconds."]
    elif time_ms > MAX_TIME_MS:
        errors["timeStudied"] = [f"The module results' total time, {total_time} milliseconds, is over one day."]
    if errors:
        raise ValidationError(errors)
    return dataclasses.replace(derived, time_ms=time_ms, completed_at_ms=data.get("completedAt"))


class Score(fields.Float):
    """A score held in hundredths (``score_cents``), shown as a percentage with 2 decimal places."""

    @staticmethod
    def to_wire(value: Any) -> float:
        return int(value) / SCORE_SCALE

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> float:
        return self.to_wire(value)


class ModuleResultResponse(Schema):
    moduleType = fields.String(required=True)
    score = fields.Float(required=True, metadata={"minimum": 0, "maximum": MAX_SCORE})
    timeStudied = fields.Integer(required=True, metadata={"description": "Milliseconds."})
    moduleId = fields.String(metadata={"format": "uuid"})


class ModuleResults(fields.List):
    r"""A session's :class:`ModuleResult`\ s; a session without any is shown without the field."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.Nested(ModuleResultResponse), **kwargs)

    @staticmethod
    def to_wire(results: Any) -> Any:
        if not results:
            return missing  # marshmallow, and the contract's short path, leave the field out
        wired = []
        for result in results:
            item = {"moduleType": result.module_type, "score": result.score_cents / SCORE_SCALE}
            item["timeStudied"] = result.time_ms
            if result.module_id is not None:
                item["moduleId"] = result.module_id
            wired.append(item)
        return wired

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return self.to_wire(value)


class SessionStatsResponse(Schema):
    """Dumps a :class:`SessionStats`."""

    sessionId = fields.String(required=True, attribute="session_id", metadata={"format": "uuid"})
    totalModulesStudied = fields.Integer(required=True, attribute="modules")
    averageScore = Score(required=True, attribute="score_cents", metadata={"minimum": 0, "maximum": MAX_SCORE})
    timeStudied = fields.Integer(required=True, attribute="time_ms", metadata={"description": "Milliseconds."})
    completedAt = CompletedAt(
        required=True, attribute="completed_at_ms", metadata={"description": "UTC, to the millisecond."}
    )
    modules = ModuleResults(attribute="results", metadata={"description": "When the session has module results."})
    points = fields.Integer(
        required=True, metadata={"description": "Earned when the session was written, by the points table then."}
    )


class CourseStatsResponse(Schema):
    """Dumps a :class:`CourseTotals`."""

    totalModulesStudied = fields.Integer(
        required=True, attribute="modules", metadata={"description": "Sum over sessions."}
    )
    averageScore = Score(
        required=True,
        attribute="average_score_cents",
        metadata={
            "description": "Mean session score weighted by modules studied (plain mean if none).",
            "minimum": 0,
            "maximum": MAX_SCORE,
        },
    )
    timeStudied = fields.Integer(
        required=True, attribute="time_ms", metadata={"description": "Sum over sessions, milliseconds."}
    )
    sessionsCount = fields.Integer(
        required=True, attribute="sessions", metadata={"description": "Sessions in this course."}
    )
    points = fields.Integer(required=True, metadata={"description": "Sum over sessions of the points each earned."})


class PointsResponse(Schema):
    """Dumps a :class:`LearnerPoints`."""

    points = fields.Integer(required=True, metadata={"description": "Over every session in every course."})
    coursesCount = fields.Integer(
        required=True, attribute="courses", metadata={"description": "Courses the learner has a session in."}
    )


class UserHeader(Schema):
    """Documents the learner's header; ``service.http.identity`` reads it, beside a bearer token."""

    user_id = UUIDString(
        data_key="X-User-Id",
        metadata={
            "description": (
                "The learner, as the platform's gateway names them. Where the gateway is trusted it "
                "is required without a bearer token; with a token it must name the token's user."
            )
        },
    )

    @classmethod
    def user_field(cls) -> UUIDString:
        field = cls._declared_fields["user_id"]
        assert isinstance(field, UUIDString)
        return field


class CoursePath(Schema):
    course_id = UUIDString(required=True, data_key="courseId")


class SessionPath(CoursePath):
    session_id = UUIDString(required=True, data_key="sessionId")


class ErrorDetail(Schema):
    code = fields.String(required=True, metadata={"example": "validation_error"})
    message = fields.String(required=True)
    field_errors = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        data_key="fields",
        metadata={"description": "What is wrong with each invalid field."},
    )


class ErrorResponse(Schema):
    error = fields.Nested(ErrorDetail, required=True)


class HealthResponse(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadyResponse(Schema):
    status = fields.String(required=True, metadata={"example": "ready"})
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class VersionResponse(Schema):
    version = fields.String(required=True)
    revision = fields.String(required=True, metadata={"description": "The git commit the image was built from."})


MAX_PAGE = 100
MAX_BATCH = 100


class EachLoaded(fields.List):
    """A list whose items load one by one: each is its inner field's value, or the
    ``ValidationError`` that refused it, so one bad item never refuses the others."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        return [self._load_item(item) for item in value]

    def _load_item(self, item: Any) -> Any:
        try:
            return self.inner.deserialize(item)
        except ValidationError as exc:
            return exc


class BatchBody(Schema):
    class Meta:
        unknown = RAISE

    sessions = EachLoaded(
        fields.Nested(SessionStatsBody),
        required=True,
        validate=validate.Length(1, MAX_BATCH),
        metadata={"description": f"1-{MAX_BATCH} sessions, each as the body of POST /courses/{{courseId}}."},
    )


class BatchItemResult(Schema):
    index = fields.Integer(required=True, metadata={"description": "The item's position in sessions, from 0."})
    status = fields.Integer(
        required=True,
        metadata={"description": "What a POST of this item alone would answer: 201, 200, 4xx, 503."},
    )
    session_id = fields.String(data_key="sessionId", metadata={"format": "uuid"})
    error = fields.Nested(ErrorDetail, metadata={"description": "Why the item was refused (status 4xx or 503)."})


class BatchResponse(Schema):
    results = fields.List(fields.Nested(BatchItemResult), required=True)


class PageQuery(Schema):
    """``?limit=&cursor=`` of every list."""

    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(1, MAX_PAGE),
        metadata={"description": f"Items per page, 1-{MAX_PAGE}.", "default": 50},
    )
    cursor = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=512),
        metadata={"description": "nextCursor of the previous page, unchanged."},
    )


def _page(item: type[Schema], name: str) -> type[Schema]:
    """``{items, nextCursor}`` of every list."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item), required=True),
            "next_cursor": fields.String(data_key="nextCursor", metadata={"description": "Absent on the last page."}),
        },
        name=name,
    )


SessionPage = _page(SessionStatsResponse, "SessionPage")


class UserPath(Schema):
    user_id = UUIDString(required=True, data_key="userId")


class UserCoursePath(CoursePath):
    user_id = UUIDString(required=True, data_key="userId")


class LearnerSessionPath(SessionPath):
    user_id = UUIDString(required=True, data_key="userId")


class CourseFiguresResponse(CourseStatsResponse):
    """Course-wide: sums over every learner's sessions in the course."""

    learnersCount = fields.Integer(
        required=True, attribute="learners", metadata={"description": "Learners with a session in this course."}
    )
    title = fields.String(metadata={"description": "When the course is registered."})


class LearnerStatsResponse(CourseStatsResponse):
    """One learner's aggregate in the course, as ``GET /courses/{courseId}`` gives it to them."""

    userId = fields.String(required=True, attribute="user_id", metadata={"format": "uuid"})


class TypeBreakdown(Schema):
    """Dumps a :class:`TypeTotals`: one module type's results."""

    moduleType = fields.String(required=True, attribute="module_type")
    modulesStudied = fields.Integer(
        required=True, attribute="results", metadata={"description": "Results of the type."}
    )
    timeStudied = fields.Integer(
        required=True, attribute="time_ms", metadata={"description": "Sum over the results, milliseconds."}
    )
    averageScore = Score(
        required=True,
        attribute="average_score_cents",
        metadata={"description": "Plain mean of the results' scores.", "minimum": 0, "maximum": MAX_SCORE},
    )


class CourseTypeBreakdown(TypeBreakdown):
    learnersCount = fields.Integer(
        required=True, attribute="learners", metadata={"description": "Learners with a result of the type."}
    )


def _items(item: type[Schema], name: str) -> type[Schema]:
    return Schema.from_dict(
        {"items": fields.List(fields.Nested(item), required=True, metadata={"description": "Ordered by type id."})},
        name=name,
    )


ModuleBreakdown = _items(TypeBreakdown, "ModuleBreakdown")
CourseModuleBreakdown = _items(CourseTypeBreakdown, "CourseModuleBreakdown")


class CourseBody(Schema):
    class Meta:
        unknown = RAISE

    title = fields.String(required=True, validate=validate.Length(min=1, max=200))


class CourseResponse(Schema):
    """Dumps a :class:`Course`."""

    courseId = fields.String(required=True, attribute="course_id", metadata={"format": "uuid"})
    title = fields.String(required=True)
    teachers = fields.List(fields.String(metadata={"format": "uuid"}), required=True)


class ErasureStatusResponse(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["done", "in_progress"]))


LearnerPage = _page(LearnerStatsResponse, "LearnerPage")
CoursePage = _page(CourseResponse, "CoursePage")


def _email() -> fields.Email:
    return fields.Email(
        required=True,
        validate=validate.Length(max=254),
        metadata={"example": "learner@example.com", "description": "Case does not matter."},
    )


class _Body(Schema):
    class Meta:
        unknown = RAISE

    @post_load
    def _lower_email(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        # One account per address: Cognito's usernames are case-insensitive, and so are emails in practice.
        if "email" in data:
            data["email"] = data["email"].lower()
        return data


class CredentialsBody(_Body):
    """An email and password; registering takes nothing else (no roles: an admin sets those)."""

    email = _email()
    password = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=256),
        metadata={"format": "password", "description": "Checked against the user pool's password policy."},
    )


class ConfirmBody(_Body):
    email = _email()
    code = fields.String(
        required=True, validate=validate.Length(min=1, max=64), metadata={"description": "The code sent by email."}
    )


class RefreshBody(_Body):
    refresh_token = fields.String(required=True, data_key="refreshToken", validate=validate.Length(min=1, max=8192))


class RolesBody(_Body):
    roles = fields.List(
        fields.String(validate=validate.OneOf(sorted(ROLES))),
        required=True,
        metadata={"description": "The user's roles from now on, as a set (empty: a learner only)."},
    )


class RegisteredResponse(Schema):
    user_id = fields.String(required=True, data_key="userId", metadata={"format": "uuid"})


class TokensResponse(Schema):
    """Dumps :class:`Tokens` of a login."""

    access_token = fields.String(
        required=True, data_key="accessToken", metadata={"description": "Send as Authorization: Bearer <token>."}
    )
    refresh_token = fields.String(
        required=True, data_key="refreshToken", metadata={"description": "For POST /auth/refresh."}
    )
    expires_in = fields.Integer(
        required=True, data_key="expiresIn", metadata={"description": "Seconds the access token is valid."}
    )


class RefreshedResponse(Schema):
    """Dumps :class:`Tokens` of a refresh."""

    access_token = fields.String(required=True, data_key="accessToken")
    expires_in = fields.Integer(required=True, data_key="expiresIn")


class RolesResponse(Schema):
    user_id = fields.String(required=True, data_key="userId", metadata={"format": "uuid"})
    roles = fields.List(fields.String(), required=True)


SESSION_BODY = SessionStatsBody()
SESSION_STATS = SessionStatsResponse()
COURSE_STATS = CourseStatsResponse()


def field_messages(error: ValidationError) -> dict[str, str]:
    """Marshmallow's messages as one sentence per field."""
    messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
    return {str(name): " ".join(_flatten(message)) for name, message in messages.items()}


def _flatten(message: Any) -> list[str]:
    if isinstance(message, str):
        return [message]
    if isinstance(message, dict):
        return [text for value in message.values() for text in _flatten(value)]
    return [text for value in message for text in _flatten(value)]


_ISO_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")
_EPOCH = datetime.date(1970, 1, 1)


class IsoWeek(fields.String):
    """``YYYY-Www``, an ISO week: loads as its number (``service.domain.model.week_of``)."""

    default_error_messages = {"invalid": "Must be an ISO week such as 2026-W49."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        match = _ISO_WEEK.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.make_error("invalid")
        try:
            monday = datetime.date.fromisocalendar(int(match[1]), int(match[2]), 1)
        except ValueError:
            raise self.make_error("invalid") from None
        return ((monday - _EPOCH).days + 3) // 7

    @staticmethod
    def label(week: int) -> str:
        year, number, _ = (_EPOCH + datetime.timedelta(days=7 * week - 3)).isocalendar()
        return f"{year}-W{number:02d}"


class _BoardQuery(Schema):
    period = fields.String(
        load_default="all",
        validate=validate.OneOf(("all", "week")),
        metadata={"description": "all: every session; week: the sessions completed in one ISO week (UTC)."},
    )
    week = IsoWeek(
        load_default=None,
        metadata={
            "description": "With period=week only: the current ISO week (the default) or one of the 12 before it.",
            "example": "2026-W49",
            "pattern": "^[0-9]{4}-W[0-9]{2}$",
        },
    )


class LeaderboardQuery(_BoardQuery):
    limit = fields.Integer(
        load_default=10,
        validate=validate.Range(1, MAX_PAGE),
        metadata={"description": f"How many of the top places, 1-{MAX_PAGE}.", "default": 10},
    )


class StaffLeaderboardQuery(_BoardQuery, PageQuery):
    """The period and week of a leaderboard, a page at a time."""


class StandingResponse(Schema):
    """Dumps a :class:`Standing` as learners see it: without whose it is."""

    rank = fields.Integer(
        required=True, metadata={"description": "Competition rank: equal points share one, and the next skips."}
    )
    points = fields.Integer(required=True, metadata={"description": "Earned in the period."})


class StaffStandingResponse(StandingResponse):
    userId = fields.String(required=True, attribute="user_id")


class _BoardResponse(Schema):
    period = fields.String(required=True, metadata={"example": "all"})
    week = fields.String(metadata={"description": "With period=week: the ISO week ranked.", "example": "2026-W49"})
    learnersCount = fields.Integer(
        required=True,
        attribute="learners",
        metadata={"description": "Learners with a session in the course in the period, zero points included."},
    )


class LeaderboardResponse(_BoardResponse):
    items = fields.List(fields.Nested(StandingResponse), required=True, metadata={"description": "The top places."})
    you = fields.Nested(
        StandingResponse, metadata={"description": "The caller's place; absent when they have no session then."}
    )


class StaffLeaderboardPage(_BoardResponse):
    items = fields.List(fields.Nested(StaffStandingResponse), required=True)
    next_cursor = fields.String(data_key="nextCursor", metadata={"description": "Absent on the last page."})
