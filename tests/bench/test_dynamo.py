"""``bench.dynamo``, the bench's fast DynamoDB stand-in, against moto.

The service's own store and catalog code (and the bench's bulk loader) run the same
calls against both servers, and every answer must be the same on both, down to the
stored items and the Query pages. Raw calls then compare the rest of what the stand-in
implements (the other comparisons, return values and DynamoDB's errors), and the
stand-in is checked alone for its HTTP protocol (kept-alive and pipelined requests,
partial reads, checksums) and for refusing by name what it does not implement.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import itertools
import json
import random
import re
import socket
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from bench.datagen import MODULE_TYPES, seeded_id
from bench.dynamo import DynamoServer
from bench.seed import delete_items, expected_pages, random_stats, session_item, write_items
from localmode.servers import MotoServer
from service.domain.errors import ServiceError
from service.domain.model import CourseTotals, LearnerRow, ModuleResult, SessionStats, WriteOutcome
from service.dynamodb import codec
from service.dynamodb.catalog import CourseCatalog
from service.dynamodb.client import DynamoDB, dynamodb, dynamodb_client
from service.dynamodb.store import SessionStore, _WriteClock
from service.dynamodb.table import ensure_table
from service.settings import Settings, load_settings

TABLE = "learning-stats-dynamo-test"
# Write stamps (µs) of the stores; the late store's are a second behind.
STAMPS = 1_750_000_000_000_000
LATE = STAMPS - 1_000_000
T = TypeVar("T")


def settings_for(endpoint: str) -> Settings:
    return dataclasses.replace(
        load_settings(environ={"STATS_ENV": "test"}), dynamodb_endpoint=endpoint, dynamodb_table=TABLE
    )


async def create_tables(endpoints: dict[str, str]) -> None:
    for endpoint in endpoints.values():
        async with dynamodb_client(settings_for(endpoint)) as client:
            await ensure_table(client, TABLE)


@pytest.fixture(scope="module")
def endpoints() -> Iterator[dict[str, str]]:
    """Both servers, with the service's table: the stand-in's endpoint and moto's."""
    servers: dict[str, DynamoServer | MotoServer] = {"stand-in": DynamoServer(), "moto": MotoServer()}
    try:
        # One after the other from this thread: a child is stopped when the thread that started it ends.
        for server in servers.values():
            server.start()
        found = {name: server.url for name, server in servers.items()}
        asyncio.run(create_tables(found))
        yield found
    finally:
        for server in servers.values():
            server.stop()


class Clock(_WriteClock):
    """Write stamps counted from a fixed start, so that both servers are sent the same values."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self._last = start

    def stamp(self) -> int:
        self._last += 1_000
        return self._last


@dataclasses.dataclass
class Side:
    """One server, seen through the service's clients and stores."""

    name: str
    clients: DynamoDB
    store: SessionStore
    late: SessionStore  # its stamps are older than the store's: a write that reached the table late
    catalog: CourseCatalog


@contextlib.asynccontextmanager
async def side(name: str, endpoint: str) -> AsyncIterator[Side]:
    async with dynamodb(settings_for(endpoint)) as clients:
        store, late = SessionStore(clients, TABLE), SessionStore(clients, TABLE)
        store._clock, late._clock = Clock(STAMPS), Clock(LATE)
        yield Side(name, clients, store, late, CourseCatalog(clients.client, TABLE))


@pytest.fixture
async def sides(endpoints: dict[str, str]) -> AsyncIterator[tuple[Side, Side]]:
    async with side("stand-in", endpoints["stand-in"]) as fast, side("moto", endpoints["moto"]) as moto:
        yield fast, moto


def plain(value: Any) -> Any:
    """``value`` in comparable form: dataclasses by every field (even those left out of their ``==``),
    sets and DynamoDB's set values in order, no response metadata."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (type(value).__name__, *(plain(getattr(value, field.name)) for field in fields))
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("SS", "NS", "BS"):
        [(kind, members)] = value.items()
        return {kind: sorted(members)}
    if isinstance(value, dict):
        left_out = ("ResponseMetadata", "ConsumedCapacity", "ItemCollectionMetrics")
        return {name: plain(member) for name, member in value.items() if name not in left_out}
    if isinstance(value, set | frozenset):
        return sorted(plain(member) for member in value)
    if isinstance(value, list | tuple):
        return [plain(member) for member in value]
    return value


async def outcome(call: Callable[[Side], Awaitable[T]], on: Side) -> tuple[bool, Any]:
    """(True, what the call returned) or (False, what it raised: its type and code, and a refused item)."""
    try:
        return True, await call(on)
    except ClientError as error:
        answer = error.response
        return False, (
            "ClientError",
            answer["Error"]["Code"],
            plain(answer.get("Item")),
            plain(answer.get("CancellationReasons")),
        )
    except ServiceError as error:
        return False, (type(error).__name__, str(error))


async def both(sides: tuple[Side, Side], call: Callable[[Side], Awaitable[T]]) -> T:
    """What ``call`` returns on the stand-in, once it returned the same on moto."""
    fast, moto = [await outcome(call, on) for on in sides]
    assert plain(fast) == plain(moto), f"stand-in: {fast}\nmoto: {moto}"
    assert fast[0], f"both raised {fast[1]}"
    return fast[1]  # type: ignore[no-any-return]


async def both_raise(sides: tuple[Side, Side], call: Callable[[Side], Awaitable[Any]]) -> Any:
    """What ``call`` raises on the stand-in, once it raised the same on moto."""
    fast, moto = [await outcome(call, on) for on in sides]
    assert plain(fast) == plain(moto), f"stand-in: {fast}\nmoto: {moto}"
    assert not fast[0], f"both returned {fast[1]}"
    return fast[1]


async def stored(on: Side, partition: str) -> list[dict[str, Any]]:
    """Every item of a partition, as a raw paginated Query reads them."""
    request: dict[str, Any] = {
        "TableName": TABLE,
        "KeyConditionExpression": "#pk = :p",
        "ExpressionAttributeNames": {"#pk": codec.PARTITION_KEY},
        "ExpressionAttributeValues": {":p": {"S": partition}},
        "ConsistentRead": True,
    }
    items: list[dict[str, Any]] = []
    while True:
        page = await on.clients.client.query(**request)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def collected(pages: AsyncIterator[T]) -> list[T]:
    return [page async for page in pages]


async def test_sessions_are_stored_as_moto_stores_them(sides: tuple[Side, Side]) -> None:
    rng = random.Random(1)
    user, course, other = seeded_id(rng), seeded_id(rng), seeded_id(rng)
    bare = random_stats(rng)
    scored = random_stats(rng, results=3)
    completed = dataclasses.replace(random_stats(rng), completed_at_ms=1_740_000_000_000)
    completed_scored = dataclasses.replace(random_stats(rng, results=2), completed_at_ms=1_740_000_000_001)

    async def upsert(stats: SessionStats, on_course: str = course) -> WriteOutcome:
        written, _ = await both(sides, lambda on: on.store.upsert(user, on_course, stats))
        return written

    for stats in (bare, scored, completed, completed_scored):
        assert await upsert(stats) is WriteOutcome.CREATED
    assert await upsert(bare) is WriteOutcome.UNCHANGED
    assert await upsert(dataclasses.replace(scored, score_cents=scored.score_cents + 1)) is WriteOutcome.REPLACED
    assert await upsert(dataclasses.replace(bare, completed_at_ms=1_740_000_000_002)) is WriteOutcome.REPLACED
    # Without a completion time the stored one stays: the same values again change nothing.
    assert await upsert(bare) is WriteOutcome.UNCHANGED
    assert await upsert(dataclasses.replace(completed_scored, results=())) is WriteOutcome.REPLACED
    written, kept = await both(
        sides, lambda on: on.late.upsert(user, course, dataclasses.replace(completed, time_ms=1))
    )
    assert written is WriteOutcome.SUPERSEDED
    assert kept.stats == completed

    tombstone = await both(sides, lambda on: on.store.delete(user, course, bare.session_id))
    assert tombstone is not None
    assert tombstone.deleted
    assert await both(sides, lambda on: on.store.delete(user, course, bare.session_id)) is None
    assert await both(sides, lambda on: on.store.delete(user, course, seeded_id(random.Random(9)))) is None
    # A late delete of a session written after it began leaves the session.
    assert await both(sides, lambda on: on.late.delete(user, course, scored.session_id)) is not None
    assert await both(sides, lambda on: on.store.get(user, course, bare.session_id)) is None
    assert await both(sides, lambda on: on.store.get(user, course, scored.session_id)) is not None
    assert await both(sides, lambda on: on.store.get(user, course, seeded_id(random.Random(9)))) is None
    assert await upsert(bare) is WriteOutcome.CREATED  # over the tombstone, at the next version
    assert await both(sides, lambda on: on.store.delete(user, course, completed.session_id)) is not None
    assert await upsert(random_stats(rng), other) is WriteOutcome.CREATED

    pages = await both(sides, lambda on: collected(on.store.course_pages(user, course)))
    assert sum(map(len, pages)) == 4

    async def listing(on: Side) -> list[list[Any]]:
        pages, after = [], None
        while True:
            page, after = await on.store.session_page(user, course, 1, after)
            pages.append(page)
            if after is None:
                return pages

    # The tombstone is skipped.
    assert len(await both(sides, listing)) == 3
    assert (await both(sides, lambda on: on.store.session_page(user, course, 10, None)))[1] is None
    learner = await both(sides, lambda on: collected(on.store.learner_pages(user)))
    assert {course_id for page in learner for course_id, _ in page} == {course, other}
    assert await both(sides, lambda on: on.store.holds_items(user))
    assert len(await both(sides, lambda on: stored(on, user))) == 5

    assert await both(sides, lambda on: on.store.erase(user)) == {course, other}
    assert not await both(sides, lambda on: on.store.holds_items(user))
    assert await both(sides, lambda on: stored(on, user)) == []


async def test_roster_rows_are_stored_as_moto_stores_them(sides: tuple[Side, Side]) -> None:
    rng = random.Random(2)
    course = seeded_id(rng)
    rows = [
        LearnerRow(
            seeded_id(rng),
            CourseTotals.of([random_stats(rng, results=index % 3) for _ in range(index % 4)]),
            revision=1,
            weeks=((2900 + index, index),) if index % 2 else (),
        )
        for index in range(24)
    ]

    def putting(row: LearnerRow, read: int | None) -> Callable[[Side], Awaitable[bool]]:
        return lambda on: on.store.put_row(course, row, read)

    for row in rows:
        assert await both(sides, putting(row, None))
    first = rows[0]
    assert not await both(sides, lambda on: on.store.put_row(course, first, None))
    assert await both(sides, lambda on: on.store.row_revision(course, first.user_id)) == 1
    assert await both(sides, lambda on: on.store.row_revision(course, seeded_id(random.Random(9)))) is None
    newer = dataclasses.replace(first, revision=2)
    assert await both(sides, lambda on: on.store.put_row(course, newer, 1))
    assert not await both(sides, lambda on: on.store.put_row(course, dataclasses.replace(first, revision=3), 1))
    assert not await both(sides, lambda on: on.store.delete_row(course, first.user_id, 1))
    assert not await both(sides, lambda on: on.store.delete_row(course, first.user_id, None))
    assert await both(sides, lambda on: on.store.delete_row(course, first.user_id, 2))
    assert await both(sides, lambda on: on.store.delete_row(course, first.user_id, None))
    assert await both(sides, lambda on: on.store.delete_row(course, rows[1].user_id, "any"))

    async def listing(on: Side) -> list[list[LearnerRow]]:
        pages: list[list[LearnerRow]] = []
        after: tuple[int, str | None] | None = (0, None)
        while after is not None:
            page, after = await on.store.roster_page(course, 3, after)
            pages.append(page)
        return pages

    listed = await both(sides, listing)
    # Rows without sessions are kept for their revision and never listed.
    assert sum(map(len, listed)) == sum(1 for row in rows[2:] if row.totals.sessions)
    assert len(await both(sides, lambda on: on.store.roster(course))) == len(rows) - 2


async def test_the_catalog_is_kept_as_moto_keeps_it(sides: tuple[Side, Side]) -> None:
    rng = random.Random(3)
    course, missing, first, second = (seeded_id(rng) for _ in range(4))
    new, registered = await both(sides, lambda on: on.catalog.register(course, "Algebra"))
    assert new
    assert registered.teachers == ()
    assert not (await both(sides, lambda on: on.catalog.register(course, "Algebra II")))[0]

    def assigning(teacher: str) -> Callable[[Side], Awaitable[None]]:
        return lambda on: on.catalog.assign(course, teacher, teaches=True)

    for teacher in (first, second):
        await both(sides, assigning(teacher))
    assert (await both(sides, lambda on: on.catalog.register(course, "Algebra III")))[1].teachers == tuple(
        sorted((first, second))
    )
    found = await both(sides, lambda on: on.catalog.course(course))
    assert found is not None
    assert found.teachers == tuple(sorted((first, second)))
    assert await both(sides, lambda on: on.catalog.course(missing)) is None
    assert await both(sides, lambda on: on.catalog.teaches(first, course))
    assert not await both(sides, lambda on: on.catalog.teaches(first, missing))
    listed, _ = await both(sides, lambda on: on.catalog.page(100, None))
    assert course in [listed_course.course_id for listed_course in listed]
    assert (await both(sides, lambda on: on.catalog.page(1, None, first)))[0] == [found]
    error = await both_raise(sides, lambda on: on.catalog.assign(missing, first, teaches=True))
    assert error[0] == "NotFound"
    await both(sides, lambda on: on.catalog.assign(course, first, teaches=False))
    assert not await both(sides, lambda on: on.catalog.teaches(first, course))
    await both(sides, lambda on: on.catalog.assign(course, second, teaches=False))
    # The last teacher's removal empties the set, which DynamoDB removes.
    assert await both(sides, lambda on: stored(on, codec.CATALOG)) != []
    item = (await both(sides, lambda on: on.clients.client.get_item(TableName=TABLE, Key=catalog_key(course))))["Item"]
    assert "teachers" not in item
    assert await both(sides, lambda on: stored(on, codec.teaching_partition(first))) == []


def catalog_key(course: str) -> dict[str, Any]:
    return {codec.PARTITION_KEY: {"S": codec.CATALOG}, codec.SORT_KEY: {"S": course}}


async def test_bulk_writes_and_query_pages_match_moto(sides: tuple[Side, Side]) -> None:
    # 100 module results with long type names make some 20 kB an item: several 1 MB pages in a few batches.
    rng = random.Random(4)
    user, course = seeded_id(rng), seeded_id(rng)
    kinds = [f"{kind}-{'x' * 200}" for kind in MODULE_TYPES]
    sessions = [
        SessionStats.of_results(
            seeded_id(rng),
            tuple(ModuleResult(rng.choice(kinds), rng.randint(0, 10_000), rng.randint(0, 400_000)) for _ in range(100)),
        )
        for _ in range(120)
    ]
    items = [session_item(user, course, stats) for stats in sessions]
    await both(sides, lambda on: write_items(on.clients.client, TABLE, items))
    pages = await both(
        sides,
        lambda on: collected(
            [stored.stats.session_id for stored in page] async for page in on.store.course_pages(user, course)
        ),
    )
    assert len(pages) == expected_pages(items) == 3
    assert sorted(itertools.chain(*pages)) == sorted(stats.session_id for stats in sessions)
    assert await both(sides, lambda on: stored(on, user)) == sorted(items, key=lambda item: item[codec.SORT_KEY]["S"])

    async def filtered(on: Side) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": TABLE,
            "KeyConditionExpression": "#pk = :p AND #sk > :after",
            "FilterExpression": "#t >= :t",
            "ProjectionExpression": "#sk, #t",
            "ExpressionAttributeNames": {"#pk": codec.PARTITION_KEY, "#sk": codec.SORT_KEY, "#t": codec.TIME_MS},
            "ExpressionAttributeValues": {
                ":p": {"S": user},
                ":after": {"S": f"{course}#8"},
                ":t": {"N": "1000000"},
            },
            "Limit": 7,
        }
        answers: list[dict[str, Any]] = []
        while True:
            answer = dict(await on.clients.client.query(**request))
            answers.append(answer)
            if "LastEvaluatedKey" not in answer:
                return answers
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    assert len(await both(sides, filtered)) > 2
    await both(sides, lambda on: delete_items(on.clients.client, TABLE, items))
    assert await both(sides, lambda on: stored(on, user)) == []


def raw_steps(partition: str) -> list[tuple[str, dict[str, Any]]]:
    """Raw calls, in order, for what the service's own calls leave out."""
    key = {codec.PARTITION_KEY: {"S": partition}, codec.SORT_KEY: {"S": "a"}}
    other = {codec.PARTITION_KEY: {"S": partition}, codec.SORT_KEY: {"S": "b"}}
    item = {**key, "n": {"N": "1"}, "s": {"S": "xy"}, "tags": {"SS": ["a", "b"]}, "flag": {"BOOL": True}}
    update: dict[str, Any] = {"TableName": TABLE, "Key": key}

    def condition(expression: str, values: dict[str, Any], **more: Any) -> dict[str, Any]:
        names = {name: name[1:] for name in re.findall(r"#\w+", expression)}
        return {
            **update,
            "UpdateExpression": "SET #seen = :seen",
            "ConditionExpression": expression,
            "ExpressionAttributeNames": {**names, "#seen": "seen"},
            "ExpressionAttributeValues": {**values, ":seen": {"S": expression}},
            "ReturnValues": "ALL_NEW",
            **more,
        }

    one, two, text = {"N": "1"}, {"N": "2"}, {"S": "xy"}
    return [
        ("batch_write_item", {"RequestItems": {TABLE: [{"PutRequest": {"Item": item}}]}}),
        ("update_item", condition("#none <> :one", {":one": one})),
        ("update_item", condition("#n <> :one", {":one": one})),
        ("update_item", condition("#n = :text", {":text": text})),
        ("update_item", condition("#n <> :text", {":text": text})),
        ("update_item", condition("#n = :one AND #s = :text", {":one": one, ":text": text})),
        ("update_item", condition("#n <= :one AND #s >= :text", {":one": one, ":text": text})),
        ("update_item", condition("(#n > :one OR #s < :text) AND attribute_exists(#n)", {":one": one, ":text": text})),
        ("update_item", condition("#n >= :two", {":two": two}, ReturnValuesOnConditionCheckFailure="ALL_OLD")),
        ("update_item", condition("#tags = :tags", {":tags": {"SS": ["b", "a"]}})),
        ("update_item", condition("#none = :one OR attribute_exists(#flag)", {":one": one})),
        (
            "update_item",
            {
                **update,
                "UpdateExpression": "SET #n = :two, #s = if_not_exists(#none, :text) ADD #tags :more, #count :two",
                "ExpressionAttributeNames": {"#n": "n", "#s": "s", "#none": "none", "#tags": "tags", "#count": "count"},
                "ExpressionAttributeValues": {":two": two, ":text": {"S": "z"}, ":more": {"SS": ["b", "c"]}},
                "ReturnValues": "ALL_NEW",
            },
        ),
        (
            "update_item",
            {
                **update,
                "UpdateExpression": "SET #s = if_not_exists(#s, :text) REMOVE #flag DELETE #tags :all",
                "ExpressionAttributeNames": {"#s": "s", "#flag": "flag", "#tags": "tags"},
                "ExpressionAttributeValues": {":text": {"S": "q"}, ":all": {"SS": ["a", "b", "c"]}},
                "ReturnValues": "ALL_OLD",
            },
        ),
        (
            "update_item",
            {
                "TableName": TABLE,
                "Key": other,
                "UpdateExpression": "REMOVE #x",
                "ExpressionAttributeNames": {"#x": "x"},
                "ReturnValues": "ALL_NEW",
            },
        ),
        (
            "get_item",
            {"TableName": TABLE, "Key": other, "ProjectionExpression": "#x", "ExpressionAttributeNames": {"#x": "x"}},
        ),
        (
            "delete_item",
            {
                "TableName": TABLE,
                "Key": other,
                "ConditionExpression": "attribute_exists(#x)",
                "ExpressionAttributeNames": {"#x": "x"},
            },
        ),
        ("delete_item", {"TableName": TABLE, "Key": other}),
        ("delete_item", {"TableName": TABLE, "Key": other}),
        ("get_item", {"TableName": TABLE, "Key": key, "ConsistentRead": True}),
        (
            "query",
            {
                "TableName": TABLE,
                "KeyConditionExpression": "#pk = :p AND begins_with(#sk, :a)",
                "FilterExpression": "#n >= :two",
                "ProjectionExpression": "#n, #count",
                "ExpressionAttributeNames": {
                    "#pk": codec.PARTITION_KEY,
                    "#sk": codec.SORT_KEY,
                    "#n": "n",
                    "#count": "count",
                },
                "ExpressionAttributeValues": {":p": {"S": partition}, ":a": {"S": "a"}, ":two": two},
            },
        ),
        ("batch_get_item", {"RequestItems": {TABLE: {"Keys": [key, other], "ConsistentRead": True}}}),
        ("describe_table", {"TableName": "no-such-table"}),
        (
            "get_item",
            {
                "TableName": TABLE,
                "Key": key,
                "ProjectionExpression": "#n",
                "ExpressionAttributeNames": {"#n": "n", "#x": "x"},
            },
        ),
        ("update_item", {**update, "UpdateExpression": "SET #n = :one", "ExpressionAttributeNames": {"#n": "n"}}),
        (
            "update_item",
            {
                **update,
                "UpdateExpression": "SET #k = :one",
                "ExpressionAttributeNames": {"#k": codec.SORT_KEY},
                "ExpressionAttributeValues": {":one": one},
            },
        ),
        ("batch_write_item", {"RequestItems": {TABLE: [{"PutRequest": {"Item": {"n": one}}}]}}),
        ("delete_item", {"TableName": TABLE, "Key": {**key, "n": one}}),
        (
            "transact_write_items",
            {
                "TransactItems": [
                    {
                        "Update": {
                            **update,
                            "UpdateExpression": "SET #seen = :one",
                            "ConditionExpression": "attribute_not_exists(#n)",
                            "ExpressionAttributeNames": {"#seen": "seen", "#n": "n"},
                            "ExpressionAttributeValues": {":one": one},
                        }
                    },
                    {"Delete": {"TableName": TABLE, "Key": other}},
                ]
            },
        ),
        (
            "transact_write_items",
            {
                "TransactItems": [
                    {"Delete": {"TableName": TABLE, "Key": key}},
                    {
                        "Update": {
                            "TableName": TABLE,
                            "Key": other,
                            "UpdateExpression": "SET #assigned = :yes",
                            "ExpressionAttributeNames": {"#assigned": "assigned"},
                            "ExpressionAttributeValues": {":yes": {"BOOL": True}},
                        }
                    },
                ]
            },
        ),
        (
            "batch_write_item",
            {"RequestItems": {TABLE: [{"DeleteRequest": {"Key": key}}, {"DeleteRequest": {"Key": key}}]}},
        ),
    ]


async def test_raw_calls_answer_as_moto_answers(sides: tuple[Side, Side]) -> None:
    partition = f"raw#{seeded_id(random.Random(5))}"
    for number, (operation, request) in enumerate(raw_steps(partition)):

        async def call(on: Side, operation: str = operation, request: dict[str, Any] = request) -> Any:
            return await getattr(on.clients.client, operation)(**request)

        fast, moto = [await outcome(call, on) for on in sides]
        assert plain(fast) == plain(moto), f"step {number} {operation}: stand-in {fast}, moto {moto}"
    assert [item[codec.SORT_KEY]["S"] for item in await both(sides, lambda on: stored(on, partition))] == ["b"]


def post(operation: str, body: bytes, *headers: str) -> bytes:
    lines = [
        "POST / HTTP/1.1",
        "Host: localhost",
        f"X-Amz-Target: DynamoDB_20120810.{operation}",
        "Content-Type: application/x-amz-json-1.0",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_answers(connection: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``count`` HTTP answers from the connection."""
    buffer = b""
    answers: list[tuple[int, dict[str, str], bytes]] = []
    while len(answers) < count:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            status, *lines = buffer[:end].decode().split("\r\n")
            headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
            length = int(headers["content-length"])
            if len(buffer) >= end + 4 + length:
                answers.append((int(status.split()[1]), headers, buffer[end + 4 : end + 4 + length]))
                buffer = buffer[end + 4 + length :]
                continue
        chunk = connection.recv(65536)
        assert chunk, "the connection closed early"
        buffer += chunk
    return answers


@pytest.fixture
def address(endpoints: dict[str, str]) -> tuple[str, int]:
    parts = urlsplit(endpoints["stand-in"])
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def test_a_connection_stays_open_between_requests(address: tuple[str, int]) -> None:
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        sockets = []
        for _ in range(2):
            connection.request("POST", "/", b"{}", {"X-Amz-Target": "DynamoDB_20120810.ListTables"})
            answer = connection.getresponse()
            body = answer.read()
            assert answer.status == 200
            assert TABLE in json.loads(body)["TableNames"]
            assert int(answer.headers["x-amz-crc32"]) == zlib.crc32(body)
            assert answer.headers["Content-Type"] == "application/x-amz-json-1.0"
            assert answer.headers["x-amzn-RequestId"]
            sockets.append(connection.sock)
        assert sockets[0] is sockets[1] is not None
    finally:
        connection.close()


def test_pipelined_and_split_requests_are_answered_in_order(address: tuple[str, int]) -> None:
    describe = post("DescribeTable", json.dumps({"TableName": TABLE}).encode())
    listing = post("ListTables", b"{}")
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(describe + listing + describe)
        answers = read_answers(connection, 3)
        assert [status for status, _, _ in answers] == [200, 200, 200]
        assert [next(iter(json.loads(body))) for _, _, body in answers] == ["Table", "TableNames", "Table"]
        # A request in pieces, split inside its headers and inside its body.
        for start, end in ((0, 10), (10, len(describe) - 5), (len(describe) - 5, len(describe))):
            connection.sendall(describe[start:end])
            time.sleep(0.02)
        [(status, headers, body)] = read_answers(connection, 1)
        assert status == 200
        assert int(headers["x-amz-crc32"]) == zlib.crc32(body)


def test_connection_close_is_honoured(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(post("ListTables", b"{}", "Connection: close"))
        [(status, headers, _)] = read_answers(connection, 1)
        assert status == 200
        assert headers["connection"] == "close"
        assert connection.recv(100) == b""


def call_raw(address: tuple[str, int], operation: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(post(operation, json.dumps(request).encode()))
        [(status, headers, body)] = read_answers(connection, 1)
    assert int(headers["x-amz-crc32"]) == zlib.crc32(body)
    return status, json.loads(body)


KEY = {codec.PARTITION_KEY: {"S": "raw"}, codec.SORT_KEY: {"S": "raw"}}
SCHEMA = {
    "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
}


def updating(expression: str, *, condition: str | None = None, **more: Any) -> dict[str, Any]:
    """An UpdateItem of ``KEY`` with the placeholders its expressions use (#a, #b; :x, :y)."""
    texts = expression + (condition or "")
    request = {"TableName": TABLE, "Key": KEY, "UpdateExpression": expression, **more}
    if condition is not None:
        request["ConditionExpression"] = condition
    if names := {name: name[1:] for name in re.findall(r"#\w+", texts)}:
        request["ExpressionAttributeNames"] = names
    if values := {value: {"N": "1"} for value in re.findall(r":\w+", texts)}:
        request["ExpressionAttributeValues"] = values
    return request


def querying(**more: Any) -> dict[str, Any]:
    return {
        "TableName": TABLE,
        "KeyConditionExpression": "#pk = :u",
        "ExpressionAttributeNames": {"#pk": codec.PARTITION_KEY},
        "ExpressionAttributeValues": {":u": {"S": "u"}},
        **more,
    }


TRANSACT_UPDATE: dict[str, Any] = {"Update": updating("SET #a = :x")}


@pytest.mark.parametrize(
    ("operation", "request_body", "named"),
    [
        ("UpdateItem", updating("SET #a.b = :x"), "nested attribute path #a."),
        (
            "GetItem",
            {"TableName": TABLE, "Key": KEY, "ProjectionExpression": "#a[0]", "ExpressionAttributeNames": {"#a": "a"}},
            "nested attribute path #a[",
        ),
        ("UpdateItem", updating("SET #a = :x", condition="size(#a) > :y"), "function size"),
        ("UpdateItem", updating("SET #a = list_append(#a, :x)"), "function list_append"),
        ("UpdateItem", updating("SET #a = :x", condition="attribute_exists(a)"), "bare attribute name a"),
        ("UpdateItem", updating("SET #a = :x", condition="NOT attribute_exists(#a)"), "operator NOT"),
        ("UpdateItem", updating("SET #a = :x", condition="#a BETWEEN :x AND :y"), "operator BETWEEN"),
        ("UpdateItem", updating("SET #a = :x", condition="#a IN (:x, :y)"), "operator IN"),
        ("UpdateItem", updating("SET #a = #a + :x"), "arithmetic +"),
        ("UpdateItem", updating("SET #a = :x - :y"), "arithmetic -"),
        ("UpdateItem", updating("SET #a = #b"), "SET to the value of the attribute #b"),
        ("UpdateItem", updating("SET #a = :x", ReturnValues="UPDATED_OLD"), "ReturnValues UPDATED_OLD"),
        ("UpdateItem", updating("SET #a = :x", ReturnValues="UPDATED_NEW"), "ReturnValues UPDATED_NEW"),
        ("UpdateItem", {"TableName": TABLE, "Key": KEY}, "without an UpdateExpression"),
        ("UpdateItem", updating("SET #a = :x", Expected={}), "parameter Expected"),
        ("DeleteItem", {"TableName": TABLE, "Key": KEY, "ReturnValues": "ALL_OLD"}, "parameter ReturnValues"),
        ("GetItem", {"TableName": TABLE, "Key": KEY, "ReturnConsumedCapacity": "TOTAL"}, "parameter ReturnConsumed"),
        ("Query", querying(IndexName="byTime"), "parameter IndexName"),
        ("Query", querying(ScanIndexForward=False), "parameter ScanIndexForward"),
        ("Query", querying(Select="COUNT"), "parameter Select"),
        ("Query", querying(FilterExpression="begins_with(#pk, :u)"), "function begins_with"),
        (
            "BatchGetItem",
            {"RequestItems": {TABLE: {"Keys": [KEY], "ProjectionExpression": "#a"}}},
            "parameter ProjectionExpression",
        ),
        (
            "TransactWriteItems",
            {"TransactItems": [TRANSACT_UPDATE], "ReturnConsumedCapacity": "NONE"},
            "parameter ReturnConsumedCapacity",
        ),
        ("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": TABLE, "Item": KEY}}]}, "TransactItem Put"),
        (
            "TransactWriteItems",
            {"TransactItems": [{"ConditionCheck": {"TableName": TABLE, "Key": KEY}}]},
            "TransactItem ConditionCheck",
        ),
        ("ListTables", {"Limit": 1}, "parameter Limit"),
        ("ListTables", {"ExclusiveStartTableName": TABLE}, "parameter ExclusiveStartTableName"),
        ("CreateTable", {"TableName": "refused", **SCHEMA}, "BillingMode PROVISIONED"),
        (
            "CreateTable",
            {"TableName": "refused", **SCHEMA, "BillingMode": "PROVISIONED"},
            "BillingMode PROVISIONED",
        ),
        (
            "CreateTable",
            {
                "TableName": "refused",
                **SCHEMA,
                "BillingMode": "PROVISIONED",
                "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
            },
            "parameter ProvisionedThroughput",
        ),
        (
            "CreateTable",
            {"TableName": "refused", **SCHEMA, "BillingMode": "PAY_PER_REQUEST", "DeletionProtectionEnabled": True},
            "parameter DeletionProtectionEnabled",
        ),
    ],
)
def test_what_is_not_implemented_is_refused_by_name(
    address: tuple[str, int], operation: str, request_body: dict[str, Any], named: str
) -> None:
    status, answer = call_raw(address, operation, request_body)
    assert status == 400
    assert answer["__type"].endswith("#ValidationException")
    assert named in answer["message"]
    assert "not supported" in answer["message"]


@pytest.mark.parametrize("operation", ["PutItem", "DeleteTable", "Scan", "Nonsense"])
def test_an_operation_not_served_is_refused_by_name(address: tuple[str, int], operation: str) -> None:
    status, answer = call_raw(address, operation, {"TableName": TABLE})
    assert status == 400
    assert answer["__type"].endswith("#UnknownOperationException")
    assert operation in answer["message"]
    # A refused DeleteTable deleted nothing.
    assert TABLE in call_raw(address, "ListTables", {})[1]["TableNames"]


def test_an_expectation_is_refused(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(post("ListTables", b"{}", "Expect: 100-continue"))
        [(status, headers, _)] = read_answers(connection, 1)
        assert status == 417
        assert headers["connection"] == "close"


def test_values_of_different_types_compare_as_in_dynamodb(address: tuple[str, int]) -> None:
    """Ordering a number against a string is false, not an error (moto answers 500 to it)."""
    item = {**KEY, "n": {"N": "1"}}
    put = {"RequestItems": {TABLE: [{"PutRequest": {"Item": item}}]}}
    assert call_raw(address, "BatchWriteItem", put)[0] == 200
    status, answer = call_raw(
        address,
        "UpdateItem",
        {
            "TableName": TABLE,
            "Key": KEY,
            "UpdateExpression": "SET #n = :s",
            "ConditionExpression": "#n < :s",
            "ExpressionAttributeNames": {"#n": "n"},
            "ExpressionAttributeValues": {":s": {"S": "2"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    )
    assert status == 400
    assert answer["__type"].endswith("#ConditionalCheckFailedException")
    assert answer["Item"] == item
    assert answer["message"] == "The conditional request failed"
    assert call_raw(address, "DeleteItem", {"TableName": TABLE, "Key": KEY})[0] == 200


def test_a_transaction_token_makes_its_repeat_a_no_op(address: tuple[str, int]) -> None:
    add = {
        "Update": {
            "TableName": TABLE,
            "Key": KEY,
            "UpdateExpression": "ADD #n :one",
            "ExpressionAttributeNames": {"#n": "n"},
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    for _ in range(2):
        assert call_raw(address, "TransactWriteItems", {"TransactItems": [add], "ClientRequestToken": "once"})[0] == 200
    status, answer = call_raw(address, "GetItem", {"TableName": TABLE, "Key": KEY})
    assert answer["Item"]["n"] == {"N": "1"}
    status, answer = call_raw(
        address, "TransactWriteItems", {"TransactItems": [add, add], "ClientRequestToken": "once"}
    )
    assert status == 400
    assert answer["__type"].endswith("#IdempotentParameterMismatchException")
    assert call_raw(address, "DeleteItem", {"TableName": TABLE, "Key": KEY})[0] == 200
