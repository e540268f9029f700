"""Routes bound to their wire contract.

``@endpoint(...)`` declares, once, what a route takes and gives: whether it
acts for a learner (``learner=True``: a bearer token or a trusted
``X-User-Id``, see ``service.http.identity``), its path and body schemas, the
schema of each success status, and the error statuses it can answer. The same
declaration

- registers the schemas with aiohttp-apigami, which generates the OpenAPI
  operation (``operationId``, parameters typed by their fields, one response
  per status, errors in the one envelope);
- validates the request before the handler runs, so a handler only ever sees
  canonical values (``Inputs``) or never runs;
- serialises the handler's domain value with the response schema of the
  status it answers (``Reply``).

Bodies go through ``Schema.load``, and anything unusual through marshmallow's
own calls. The cached aggregate read is a route of about 200 µs of server CPU,
and marshmallow's generic machinery measured 25-30 µs of it there (``Schema.load``
about 12 µs per flat schema, ``Schema.dump`` about 11 µs, ``Field.deserialize``
about 4 µs per field), so two shapes take a short path planned from the same
declarations: a header or path field of ``UUIDString`` is parsed by the field's
own ``parse`` (its type check and messages), and a flat response schema of
integer, string and ``Score`` fields dumps a domain object with one getter and
one converter per field. ``tests/unit/test_contract.py`` holds both to
marshmallow's own results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_apigami import (
    docs,
    headers_schema,
    match_info_schema,
    querystring_schema,
    request_schema,
    response_schema,
)
from marshmallow import Schema, ValidationError, fields, missing
from marshmallow.fields import Field

from service import keys
from service.domain.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from service.domain.identity import Forbidden
from service.http.identity import identify
from service.http.schemas import (
    CompletedAt,
    ErrorResponse,
    ModuleResults,
    Score,
    UserHeader,
    UUIDString,
    field_messages,
)

MAX_BODY_BYTES = 64 * 1024
# The batch route's limit (SPEC §7: a batch of sessions with module results); the application's too.
MAX_BATCH_BODY_BYTES = 1024 * 1024

# The OpenAPI security scheme of access tokens.
BEARER = "bearerAuth"

# What each error status means, as the OpenAPI document tells integrators.
ERROR_DESCRIPTIONS = {
    400: "Invalid header, id in the path, or body.",
    401: "No valid bearer token (and no trusted X-User-Id); see WWW-Authenticate.",
    403: "The token's user may not do this, or X-User-Id names another user.",
    404: "Not found for this user.",
    409: "Conflicts with what exists: an account for this email, or a confirmed one.",
    413: "Body over 64 KiB (the batch route: 1 MiB).",
    415: "Body is not application/json.",
    429: "The identity provider refuses more requests or attempts for now; see Retry-After.",
    503: "A dependency is unavailable; see Retry-After.",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Inputs:
    """A request's validated values: header and path fields by attribute name, and the loaded body."""

    params: dict[str, Any]
    body: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer: the status, the domain value its response schema dumps, extra headers."""

    status: int
    value: Any = None
    headers: Mapping[str, str] | None = None


RouteHandler = Callable[[web.Request, Inputs], Awaitable[Reply]]


def _short_parse(field: Field) -> Callable[[object], Any] | None:
    """``field.parse`` where it is all that ``field.deserialize`` would do with a present value."""
    if type(field) is UUIDString and not field.validators and not field.allow_none:
        return field.parse
    return None


class _FlatReader:
    """Validates path or query parameters against a schema of scalar fields."""

    def __init__(self, schema: Schema) -> None:
        self._fields = [
            (field.data_key or name, name, field, _short_parse(field)) for name, field in schema.load_fields.items()
        ]

    def read(self, source: Mapping[str, str], into: dict[str, Any], errors: dict[str, str]) -> None:
        for key, name, field, parse in self._fields:
            value = source.get(key, missing)
            try:
                into[name] = parse(value) if parse is not None and value is not missing else field.deserialize(value)
            except ValidationError as exc:
                errors[key] = " ".join(field_messages(exc).values())


# Converters of the field types a flat response schema may dump by the short path.
_TO_WIRE: dict[type[Field], Callable[[Any], Any]] = {
    fields.Integer: int,
    fields.String: str,
    Score: Score.to_wire,
    CompletedAt: CompletedAt.to_wire,
    ModuleResults: ModuleResults.to_wire,
}


class Dumper:
    """``schema.dump(obj)``, by the short path when the schema and ``obj`` allow it."""

    def __init__(self, schema: Schema) -> None:
        self._schema = schema
        self._plan: list[tuple[str, str, Callable[[Any], Any]]] | None = []
        for name, field in schema.dump_fields.items():
            convert = _TO_WIRE.get(type(field))
            if convert is None:
                self._plan = None
                break
            self._plan.append((field.data_key or name, field.attribute or name, convert))

    def dump(self, obj: Any) -> Any:
        if self._plan is None or isinstance(obj, Mapping):
            return self._schema.dump(obj)
        dumped = {}
        for key, attribute, convert in self._plan:
            value = getattr(obj, attribute, missing)
            if value is not missing:  # as marshmallow does, a value lacking a field dumps without it
                wired = None if value is None else convert(value)
                if wired is not missing:  # nor does one whose field serialises to nothing
                    dumped[key] = wired
        return dumped


async def read_json_object(request: web.Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request body as a JSON object, or the 4xx that says why it is not one."""
    if request.content_type != "application/json" and not request.content_type.endswith("+json"):
        raise UnsupportedMediaType("Content-Type must be application/json")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(limit) from None
    if len(raw) > limit:  # a chunked body declares no length
        raise PayloadTooLarge(limit)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationFailed("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationFailed("body must be a JSON object")
    return data


@dataclasses.dataclass(frozen=True, slots=True)
class Contract:
    """What one route takes and gives; ``endpoint`` builds it."""

    operation_id: str
    summary: str
    tag: str
    responses: Mapping[int, tuple[Schema | None, str]]
    errors: tuple[int, ...]
    path: Schema | None
    query: Schema | None
    body: Schema | None
    path_reader: _FlatReader | None
    query_reader: _FlatReader | None
    dumpers: Mapping[int, Dumper]
    learner: bool
    roles: frozenset[str]
    teaching: bool
    max_body: int

    async def _caller(self, request: web.Request) -> dict[str, Any]:
        """Who the route acts for: a learner (``user_id``), or a caller with one of its roles."""
        if self.learner:
            identity = request[keys.IDENTITY] = await identify(request)
            return {"user_id": identity.user_id, "identity": identity}
        if self.roles:
            identity = request[keys.IDENTITY] = await identify(request, token_required=True)
            if not identity.roles & self.roles:
                raise Forbidden(f"this route needs the {' or '.join(sorted(self.roles))} role")
            return {"identity": identity}
        return {}

    async def inputs(self, request: web.Request) -> Inputs:
        """The request's validated values, or ``ValidationFailed`` naming every bad field."""
        params: dict[str, Any] = await self._caller(request)
        invalid: dict[str, str] = {}
        if self.path_reader is not None:
            self.path_reader.read(request.match_info, params, invalid)
        if self.query_reader is not None:
            self.query_reader.read(request.query, params, invalid)
        if invalid:
            raise ValidationFailed(f"invalid {', '.join(invalid)}", invalid)
        if self.teaching:
            await request.app[keys.COURSES].check_reader(params["identity"], params["course_id"])
        if self.body is None:
            return Inputs(params)
        try:
            return Inputs(params, self.body.load(await read_json_object(request, self.max_body)))
        except ValidationError as exc:
            raise ValidationFailed("invalid request body", field_messages(exc)) from None

    def respond(self, reply: Reply) -> web.Response:
        dumper = self.dumpers.get(reply.status)
        if dumper is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.Response(
            body=orjson.dumps(dumper.dump(reply.value)),
            status=reply.status,
            content_type="application/json",
            headers=reply.headers,
        )

    def document(self, handle: Handler) -> Handler:
        """Register the schemas with aiohttp-apigami, which builds the OpenAPI operation from them."""
        other: dict[int, dict[str, Any]] = {
            status: {"schema": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]} for status in self.errors
        }
        other.update({status: {"description": text} for status, (schema, text) in self.responses.items() if not schema})
        described: dict[str, Any] = {"tags": [self.tag], "summary": self.summary, "operation_id": self.operation_id}
        if self.learner:
            # A bearer token, or (no requirement) the X-User-Id of a trusted gateway.
            described["security"] = [{BEARER: []}, {}]
        elif self.roles:
            described["security"] = [{BEARER: []}]
            described["description"] = f"Needs a bearer token with the {' or '.join(sorted(self.roles))} role." + (
                " A teacher only for a course they teach." if self.teaching else ""
            )
        decorators = [docs(responses=other, **described)]
        if self.learner:
            decorators.append(headers_schema(UserHeader))
        if self.path is not None:
            decorators.append(match_info_schema(self.path))
        if self.query is not None:
            decorators.append(querystring_schema(self.query))
        if self.body is not None:
            decorators.append(request_schema(self.body, required=True))
        decorators += [
            response_schema(schema, status, description=text)
            for status, (schema, text) in self.responses.items()
            if schema is not None
        ]
        documented: Any = handle
        for decorate in decorators:
            documented = decorate(documented)
        return documented  # type: ignore[no-any-return]


def endpoint(
    *,
    operation_id: str,
    summary: str,
    responses: Mapping[int, tuple[Schema | None, str]],
    errors: tuple[int, ...],
    path: Schema | None = None,
    query: Schema | None = None,
    body: Schema | None = None,
    tag: str = "stats",
    learner: bool = False,
    roles: frozenset[str] = frozenset(),
    teaching: bool = False,
    max_body: int = MAX_BODY_BYTES,
) -> Callable[[RouteHandler], Handler]:
    """Bind a handler to its contract; see the module docstring.

    ``roles``: the route needs a bearer token (never a trusted header) with one of them.
    ``teaching``: a teacher may call it only for a course they teach (the path's ``courseId``).
    ``max_body``: the largest body it reads, at most ``MAX_BATCH_BODY_BYTES``.
    """
    path_reader = _FlatReader(path) if path is not None else None
    query_reader = _FlatReader(query) if query is not None else None
    dumpers = {status: Dumper(schema) for status, (schema, _) in responses.items() if schema is not None}
    contract = Contract(
        operation_id,
        summary,
        tag,
        dict(responses),
        errors,
        path,
        query,
        body,
        path_reader,
        query_reader,
        dumpers,
        learner,
        roles,
        teaching,
        max_body,
    )

    def bind(handler: RouteHandler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return contract.respond(await handler(request, await contract.inputs(request)))

        handle.__name__ = handler.__name__
        handle.__doc__ = handler.__doc__
        return contract.document(handle)

    return bind
