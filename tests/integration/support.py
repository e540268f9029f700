"""Helpers shared by the integration tests: an HTTP client that holds every reply to the
served OpenAPI document, and a view of the backends."""

from __future__ import annotations

import asyncio
import copy
import functools
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestClient
from jsonschema import Draft4Validator, FormatChecker  # type: ignore[import-untyped]
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
from multidict import CIMultiDict
from redis.asyncio import Redis, RedisCluster
from referencing import Registry
from referencing.jsonschema import DRAFT4

from bench.datagen import new_id
from service.domain.model import CourseTotals, week_of
from service.dynamodb.codec import PARTITION_KEY
from service.dynamodb.store import SessionStore
from service.http.openapi import SPEC_PATH
from service.redis.cache import aggregate_key
from service.settings import Settings, load_settings

# new_id is re-exported: the integration and failure tests take their ids from here.
__all__ = [
    "SPEC_PATH",
    "TABLE",
    "Api",
    "Backends",
    "Contract",
    "ContractViolation",
    "Reply",
    "new_id",
    "settings_for",
]

TABLE = "learning-stats-test"


def settings_for(redis_url: str, dynamodb_endpoint: str, **overrides: Any) -> Settings:
    return load_settings(
        environ={"STATS_ENV": "test"},
        redis_url=redis_url,
        dynamodb_endpoint=dynamodb_endpoint,
        dynamodb_table=TABLE,
        **overrides,
    )


class Reply:
    def __init__(self, status: int, headers: CIMultiDict[str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class ContractViolation(AssertionError):
    """A reply that the served OpenAPI document does not allow."""


# GET routes the service serves outside its OpenAPI document: Prometheus text, and the
# document and Swagger UI themselves (test_openapi validates the document as OpenAPI 3).
_OFF_CONTRACT = re.compile(r"/metrics|/api/docs(/.*)?")
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
# The document is registered under this URI so that any schema in it can be compiled on its own.
_DOC_URI = "urn:served-openapi"
_ERROR_SCHEMA = "#/components/schemas/ErrorResponse"
_FORMATS = FormatChecker()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _media_matches(documented: str, served: str) -> bool:
    kind, _, subtype = documented.partition("/")
    served_kind, _, served_subtype = served.partition("/")
    return kind in ("*", served_kind) and subtype in ("*", served_subtype)


def _as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schemas as draft 4 JSON Schema: absolute ``$ref``s, ``nullable`` as a type."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _as_json_schema(value) for key, value in node.items()}
    ref = converted.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        converted["$ref"] = _DOC_URI + ref
    if converted.pop("nullable", False) is True:
        if "$ref" in converted or "type" not in converted:
            # Draft 4 ignores the siblings of a $ref, so null has to be allowed around it.
            return {"anyOf": [converted, {"type": "null"}]}
        types = converted["type"] if isinstance(converted["type"], list) else [converted["type"]]
        converted["type"] = [*types, "null"]
        if "enum" in converted:
            converted["enum"] = [*converted["enum"], None]
    return converted


def _target(document: Mapping[str, Any], ref: str) -> Any:
    """What a local ``$ref`` (``#/...``, or absolute under the document's URI) points at."""
    target: Any = document
    for token in ref.partition("#")[2].split("/")[1:]:
        target = target[token.replace("~1", "/").replace("~0", "~")]
    return target


def _inline(document: Mapping[str, Any], node: Any, seen: frozenset[str] = frozenset()) -> Any:
    """``node`` with its ``$ref``s replaced by their targets, so that validating looks nothing up.

    A recursive schema keeps its ``$ref`` where it recurs; the registry resolves that one.
    """
    if isinstance(node, list):
        return [_inline(document, item, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DOC_URI + "#") and ref not in seen:
        return _inline(document, _target(document, ref), seen | {ref})
    return {key: _inline(document, value, seen) for key, value in node.items()}


def _template_pattern(template: str) -> re.Pattern[str]:
    # A path parameter is one non-empty segment, as in aiohttp's router.
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts))


class _Mismatch(Exception):
    """What is wrong with one reply; :meth:`Contract.check` says which request it answered."""


class Contract:
    """The served OpenAPI document as a checker of replies; validators are compiled once."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        document = _as_json_schema(copy.deepcopy(dict(spec)))
        registry: Registry[Any] = Registry().with_resource(_DOC_URI, DRAFT4.create_resource(document))

        def compile_schema(schema: Any) -> Draft4Validator:
            return Draft4Validator(_inline(document, schema), registry=registry, format_checker=_FORMATS)

        def media(response: Mapping[str, Any]) -> dict[str, Draft4Validator | None]:
            content = _inline(document, response).get("content", {})
            return {
                kind: compile_schema(item["schema"]) if "schema" in item else None for kind, item in content.items()
            }

        # Per path template: method -> (operation name, documented status -> media type -> validator).
        self._routes: list[tuple[re.Pattern[str], int, dict[str, tuple[str, dict[str, Any]]]]] = [
            (
                _template_pattern(template),
                template.count("{"),
                {
                    method.upper(): (
                        f"{method.upper()} {template}",
                        {status: media(response) for status, response in operation["responses"].items()},
                    )
                    for method, operation in item.items()
                    if method in _METHODS
                },
            )
            for template, item in document["paths"].items()
        ]
        self._envelope = {"application/json": compile_schema({"$ref": _DOC_URI + _ERROR_SCHEMA})}

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def of(raw: bytes) -> Contract:
        """The contract of a served document; every Api over the same document shares one."""
        return Contract(orjson.loads(raw))

    def check(self, method: str, path: str, reply: Reply, *, undocumented: Collection[int] = ()) -> None:
        """Raise :class:`ContractViolation` unless the document allows ``reply`` to this request.

        ``undocumented`` names statuses a test provokes on purpose that no operation lists (the
        500 of a genuine bug); their bodies must still be the error envelope.
        """
        method, path = method.upper(), path.partition("?")[0]
        try:
            expected = self._expected(method, path, reply.status, undocumented)
            if expected is not None:
                _check_body(reply, *expected)
        except _Mismatch as exc:
            raise ContractViolation(
                f"{method} {path} answered {reply.status}, which the served OpenAPI document does not allow: "
                f"{exc}\n  body: {reply.body[:500]!r}"
            ) from None

    def _expected(
        self, method: str, path: str, status: int, undocumented: Collection[int]
    ) -> tuple[str, Mapping[str, Any]] | None:
        """Whose response this is and its media types, or None for a route outside the contract."""
        if status in undocumented:
            return "the error envelope", self._envelope
        # As OpenAPI matches: a more concrete path (fewer templated segments) before its templated twins.
        candidates = [(params, operations) for pattern, params, operations in self._routes if pattern.fullmatch(path)]
        fewest = min((params for params, _ in candidates), default=0)
        matching = [operations for params, operations in candidates if params == fewest]
        for operations in matching:
            if method in operations:
                name, responses = operations[method]
                key = next((key for key in (str(status), f"{status // 100}XX", "default") if key in responses), None)
                if key is None:
                    raise _Mismatch(f"status {status} is not documented for {name} (only {', '.join(responses)})")
                return f"{name} {key}", responses[key]
        if method == "GET" and _OFF_CONTRACT.fullmatch(path):
            return None
        # Outside the document the router answers: 405 on a documented path, 404 elsewhere.
        if status != (wanted := 405 if matching else 404):
            raise _Mismatch(f"the route or method is not documented, so the answer must be {wanted}")
        return "the error envelope", self._envelope


def _check_body(reply: Reply, what: str, documented: Mapping[str, Any]) -> None:
    media_type = reply.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if not documented:
        if reply.body:
            raise _Mismatch(f"{what} documents no body, yet one was sent")
        return
    validators = [validator for kind, validator in documented.items() if _media_matches(kind, media_type)]
    if not validators:
        raise _Mismatch(f"Content-Type {media_type!r} is not documented for {what} (only {', '.join(documented)})")
    if validators[0] is None or not _is_json(media_type):
        return
    try:
        body = orjson.loads(reply.body)
    except orjson.JSONDecodeError as exc:
        raise _Mismatch(f"the body is not JSON: {exc}") from None
    error = best_match(validators[0].iter_errors(body))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise _Mismatch(f"the body does not match the schema of {what}: at {where}: {error.message}")


class Api:
    """The service's HTTP API, whichever way the service runs; every reply is checked
    against the OpenAPI document the service serves."""

    def __init__(self, client: TestClient[Any, Any] | aiohttp.ClientSession) -> None:
        self._client = client
        self._contract: Contract | None = None
        # Concurrent first calls (the fault tests' traffic) fetch the document once.
        self._contract_lock = asyncio.Lock()

    async def contract(self) -> Contract:
        """The served document, fetched on first use (call it early to keep that request out of a measurement)."""
        async with self._contract_lock:
            if self._contract is None:
                async with self._client.get(SPEC_PATH) as response:
                    assert response.status == 200, f"{SPEC_PATH} answered {response.status}"
                    self._contract = Contract.of(await response.read())
        return self._contract

    async def call(
        self,
        method: str,
        path: str,
        *,
        user: str | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        undocumented: Collection[int] = (),
    ) -> Reply:
        """One request; fails with :class:`ContractViolation` if the document does not allow the reply.

        ``undocumented``: statuses this call provokes on purpose that the document does not list
        (a genuine bug's 500); their bodies must still be the error envelope.
        """
        all_headers = dict(headers or {})
        if user is not None:
            all_headers["X-User-Id"] = user
        kwargs: dict[str, Any] = {"headers": all_headers}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        async with self._client.request(method, path, **kwargs) as response:
            reply = Reply(response.status, CIMultiDict(response.headers), await response.read())
        (await self.contract()).check(method, path, reply, undocumented=undocumented)
        return reply

    async def post(self, user: str, course: str, body: Any) -> Reply:
        return await self.call("POST", f"/courses/{course}", user=user, json=body)

    async def course(self, user: str, course: str) -> Reply:
        return await self.call("GET", f"/courses/{course}", user=user)

    async def session(self, user: str, course: str, session: str) -> Reply:
        return await self.call("GET", f"/courses/{course}/sessions/{session}", user=user)


class Backends:
    """Direct access to what the service stored, to check it from outside."""

    def __init__(self, store: SessionStore, dynamodb: Any, redis: Redis | RedisCluster) -> None:
        self.store = store
        self.dynamodb = dynamodb
        self.redis = redis

    async def items(self, user: str) -> list[dict[str, Any]]:
        paginator = self.dynamodb.get_paginator("query")
        pages = paginator.paginate(
            TableName=TABLE,
            KeyConditionExpression="#pk = :u",
            ExpressionAttributeNames={"#pk": PARTITION_KEY},
            ExpressionAttributeValues={":u": {"S": user}},
            ConsistentRead=True,
        )
        return [item async for page in pages for item in page["Items"]]

    async def cache_keys(self, user: str) -> list[bytes]:
        return [key async for key in self.redis.scan_iter(match=aggregate_key(user, "*"))]

    async def truth(self, user: str, course: str) -> CourseTotals:
        """The aggregate recomputed from DynamoDB, bypassing the service."""
        pages = self.store.course_pages(user, course)
        sessions = [stored.stats async for page in pages for stored in page if not stored.deleted]
        return CourseTotals.of(sessions)

    async def board(self, users: Iterable[str], course: str, week: int | None = None) -> list[tuple[str, int]]:
        """A course's leaderboard as DynamoDB's sessions make it, bypassing the service: (user, points) for every
        learner with a session in the period (all time, or one ISO week), most points first, then by user id."""
        entries = []
        for user in users:
            pages = self.store.course_pages(user, course)
            sessions = [stored.stats async for page in pages for stored in page if not stored.deleted]
            if week is not None:
                sessions = [stats for stats in sessions if week_of(stats.completed_at_ms or 0) == week]
            if sessions:
                entries.append((user, sum(stats.points for stats in sessions)))
        return sorted(entries, key=lambda entry: (-entry[1], entry[0]))

    async def assert_nothing_stored(self, user: str) -> None:
        assert await self.items(user) == []
        assert await self.cache_keys(user) == []
