"""DynamoDB session store: the source of truth.

Items are keyed and encoded by ``service.dynamodb.codec``: one user's sessions
in one course are a single ``Query`` on the key (no ``Scan`` anywhere).

Every change of an item increments its ``version`` atomically in the same
``UpdateItem``; the Redis aggregates order contributions by it (see
``service.redis.cache``). Re-posting identical values is refused by a condition, so
it neither bumps the version nor rewrites the item.

**No late attempt replaces a newer write.** A request's ``UpdateItem`` can reach
the table after its caller gave up on it (botocore retries after a read
timeout; a client retries over HTTP), and land after a newer write of the same
session was acknowledged. Each call therefore carries one write stamp, taken
when it starts and identical in all its botocore attempts: the time in µs,
never going backwards within a process. The condition admits a write only if
the stored stamp is older, so a late attempt (whose stamp is older than the
acknowledged write it would overwrite) changes nothing, and its refusal reaches
nobody. This keeps a POST at one round trip.

**Deletes are tombstones.** A delete keeps the item, marked ``deleted``, with
its values removed and its version incremented, rather than removing it: an
item removed and created again would start at version 1 again, and every
cache that recorded a higher version would ignore it. A write onto a tombstone
creates the session again at the next version. Only erasure removes items.

Clock skew between tasks: of two writes to one session whose stamps are less
than the skew apart, the one stamped later wins, whichever reached the table
last; the other answers 200 with the winner's values (``SUPERSEDED``), so each
client sees what is stored. Fargate tasks keep time with the Amazon Time Sync
Service, so that window is about a millisecond; sequential writes of one
client are further apart than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from service.domain.errors import DependencyUnavailable
from service.domain.model import LearnerRow, SessionStats, StoredSession, WriteOutcome
from service.dynamodb import codec
from service.dynamodb.client import DynamoDB

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# Errors that mean "try again later" rather than "this request is wrong".
_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "ResourceNotFoundException",
        "ResourceInUseException",
    }
)

_NAMES = {
    "#m": codec.MODULES,
    "#s": codec.SCORE,
    "#t": codec.TIME_MS,
    "#v": codec.VERSION,
    "#w": codec.WRITTEN_AT,
    "#d": codec.DELETED,
    "#c": codec.COMPLETED_AT,
    "#r": codec.RESULTS,
    "#p": codec.POINTS,
}
_NEWER_STAMP = "(attribute_not_exists(#w) OR #w < :now)"
_CHANGED = (
    "attribute_not_exists(#v) OR attribute_exists(#d) OR #m <> :m OR #s <> :s OR #t <> :t"
    " OR attribute_not_exists(#p) OR #p <> :p"
)


@functools.cache
def _upsert(given: bool, results: bool) -> tuple[str, str]:
    """The expression and condition of an upsert, by whether the body gives a completion time and module results.

    With a completion time the body sets it; without, the stored one stays (or it is now, on creation).
    Results replace the stored ones; a body without them leaves the session without. Identical values
    fail the condition's first clause, so nothing is written and the version stays; a stamp no newer
    than the stored one fails the second, so a late attempt writes nothing."""
    completed = ":c" if given else "if_not_exists(#c, :c)"
    expression = f"SET #m = :m, #s = :s, #t = :t, #p = :p, #w = :now, #c = {completed}"
    expression += ", #r = :r REMOVE #d" if results else " REMOVE #d, #r"
    changed = _CHANGED + (" OR attribute_not_exists(#r) OR #r <> :r" if results else " OR attribute_exists(#r)")
    if given:
        changed += " OR #c <> :c"
    return f"{expression} ADD #v :one", f"({changed}) AND {_NEWER_STAMP}"


_DELETE_EXPRESSION = "SET #d = :yes, #w = :now REMOVE #m, #s, #t, #p, #c, #r ADD #v :one"
_DELETE_CONDITION = f"attribute_exists(#v) AND attribute_not_exists(#d) AND {_NEWER_STAMP}"
_ROW_ATTRIBUTES = (*codec.ROW_SUMS, codec.ROW_TYPE_SUMS, codec.ROW_WEEKS, codec.REVISION)
_ROW_NAMES = {f"#{name}": name for name in _ROW_ATTRIBUTES}
_ROW_EXPRESSION = "SET " + ", ".join(f"#{name} = :{name}" for name in _ROW_ATTRIBUTES)
# A row is stored or deleted only over the revision its recomputation read (service.domain.roster).
_ROW_ABSENT = "attribute_not_exists(#rev)"
_ROW_UNCHANGED = "#rev = :read"
# Items per BatchWriteItem (DynamoDB's limit), and such calls in flight during an erasure.
_BATCH_WRITE = 25
_ERASE_CONCURRENCY = 16
# Calls of one batch while DynamoDB leaves some of its items unprocessed (throttling), about 6 s in all.
_UNPROCESSED_ATTEMPTS = 8


class _WriteClock:
    """Microseconds since the epoch, strictly increasing within the process (wall clocks step back)."""

    def __init__(self) -> None:
        self._last = 0

    def stamp(self) -> int:
        self._last = max(time.time_ns() // 1000, self._last + 1)
        return self._last


@contextlib.contextmanager
def dynamodb_errors(operation: str) -> Iterator[None]:
    """Translate unreachable, slow or throttled DynamoDB into a 503-class error."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _TRANSIENT_CODES:
            raise DependencyUnavailable("dynamodb", f"{operation}/{code}") from exc
        raise
    except BotoCoreError as exc:
        raise DependencyUnavailable("dynamodb", f"{operation}/{type(exc).__name__}") from exc


def _refused(exc: ClientError) -> bool:
    """Whether DynamoDB refused a write by its condition (and so wrote nothing)."""
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class SessionStore:
    def __init__(self, dynamodb: DynamoDB, table: str) -> None:
        self._client = dynamodb.client
        self._wire = dynamodb.wire
        self._table = table
        self._clock = _WriteClock()

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client, for the other stores of the same table."""
        return self._client

    async def _update(
        self,
        key: dict[str, Any],
        expression: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        *,
        returns: str,
    ) -> tuple[bool, dict[str, Any]]:
        """One conditional UpdateItem: whether it applied, and the attributes it returned (``returns``
        of them when it applied; the whole stored item, or {} if there is none, when it was refused)."""
        with dynamodb_errors("UpdateItem"):
            try:
                response = await self._wire.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues=returns,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if not _refused(exc):
                    raise
                return False, exc.response.get("Item", {})
        return True, response.get("Attributes", {})

    async def upsert(self, user_id: str, course_id: str, stats: SessionStats) -> tuple[WriteOutcome, StoredSession]:
        """Create or replace one session; identical values, or a newer stored write, leave it untouched."""
        stored_values = codec.stats_values(stats)
        stamp = self._clock.stamp()
        given = stats.completed_at_ms is not None
        values = {
            ":m": stored_values[codec.MODULES],
            ":s": stored_values[codec.SCORE],
            ":t": stored_values[codec.TIME_MS],
            ":p": stored_values[codec.POINTS],
            ":c": {"N": str(stats.completed_at_ms if given else stamp // 1000)},
            ":now": {"N": str(stamp)},
            ":one": {"N": "1"},
        }
        if codec.RESULTS in stored_values:
            values[":r"] = stored_values[codec.RESULTS]
        # When it applies, the old item's version, tombstone mark and completion time say what the write did
        # (the whole old item: UPDATED_OLD may leave out an attribute that if_not_exists kept).
        key = codec.item_key(user_id, course_id, stats.session_id)
        expression, condition = _upsert(given, ":r" in values)
        applied, item = await self._update(key, expression, condition, _NAMES, values, returns="ALL_OLD")
        if not applied:
            stored = codec.decode(item)
            same = stored.stats == stats and not stored.deleted
            same = same and stats.completed_at_ms in (None, stored.stats.completed_at_ms)
            return (WriteOutcome.UNCHANGED if same else WriteOutcome.SUPERSEDED), stored
        created = codec.VERSION not in item or codec.DELETED in item
        version = int(item[codec.VERSION]["N"]) + 1 if codec.VERSION in item else 1
        if not given and not created and codec.COMPLETED_AT in item:
            completed = int(item[codec.COMPLETED_AT]["N"])  # kept
        else:
            completed = int(values[":c"]["N"])  # set, or by if_not_exists where the item had none
        written = dataclasses.replace(stats, completed_at_ms=completed)
        return (WriteOutcome.CREATED if created else WriteOutcome.REPLACED), StoredSession(written, version)

    async def delete(self, user_id: str, course_id: str, session_id: str) -> StoredSession | None:
        """Make a session a tombstone; None if there is no such session (or it is deleted already)."""
        stamp = self._clock.stamp()
        values: dict[str, Any] = {":now": {"N": str(stamp)}, ":one": {"N": "1"}, ":yes": {"BOOL": True}}
        key = codec.item_key(user_id, course_id, session_id)
        applied, item = await self._update(
            key, _DELETE_EXPRESSION, _DELETE_CONDITION, _NAMES, values, returns="ALL_NEW"
        )
        if applied:
            return codec.decode(item)
        if not item:
            return None
        current = codec.decode(item)
        # Our own earlier attempt (botocore retried after it landed) carries our stamp.
        ours = current.deleted and int(item[codec.WRITTEN_AT]["N"]) == stamp
        # A write stamped after this delete began stands, as if it came after the delete.
        return current if ours or not current.deleted else None

    async def get(self, user_id: str, course_id: str, session_id: str) -> StoredSession | None:
        with dynamodb_errors("GetItem"):
            response = await self._wire.get_item(
                TableName=self._table,
                Key=codec.item_key(user_id, course_id, session_id),
                ConsistentRead=True,
                ProjectionExpression=codec.PROJECTION,
                ExpressionAttributeNames=codec.PROJECTION_NAMES,
            )
        item = response.get("Item")
        stored = codec.decode(item) if item else None
        return None if stored is None or stored.deleted else stored

    def _course_query(self, user_id: str, course_id: str) -> dict[str, Any]:
        """A strongly consistent Query of one user's sessions in one course."""
        return {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :u AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {**codec.PROJECTION_NAMES, "#pk": codec.PARTITION_KEY},
            "ExpressionAttributeValues": {":u": {"S": user_id}, ":prefix": {"S": codec.course_prefix(course_id)}},
            "ConsistentRead": True,
            "ProjectionExpression": codec.PROJECTION,
        }

    def _partition_query(self, partition: str) -> dict[str, Any]:
        """A strongly consistent Query of every item of one partition."""
        return {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :p",
            "ExpressionAttributeNames": {"#pk": codec.PARTITION_KEY},
            "ExpressionAttributeValues": {":p": {"S": partition}},
            "ConsistentRead": True,
        }

    async def _pages(self, request: dict[str, Any]) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Every page of a Query, from its ``ExclusiveStartKey`` if it has one (moved on page by page)."""
        while True:
            with dynamodb_errors("Query"):
                response = await self._wire.query(**request)
            yield response.get("Items", [])
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return
            request["ExclusiveStartKey"] = last_key

    async def course_pages(self, user_id: str, course_id: str) -> AsyncIterator[list[StoredSession]]:
        """All of a user's sessions in a course, tombstones included, a strongly consistent page at a time."""
        async for items in self._pages(self._course_query(user_id, course_id)):
            yield [codec.decode(item) for item in items]

    async def learner_pages(self, user_id: str) -> AsyncIterator[list[tuple[str, StoredSession]]]:
        """All of a user's sessions in every course, tombstones included, with their course, a strongly
        consistent page at a time (their partition holds nothing else)."""
        request = self._partition_query(user_id)
        request["ExpressionAttributeNames"].update(codec.PROJECTION_NAMES)
        request["ProjectionExpression"] = codec.PROJECTION
        async for items in self._pages(request):
            yield [(item[codec.SORT_KEY]["S"].partition("#")[0], codec.decode(item)) for item in items]

    async def session_page(
        self, user_id: str, course_id: str, limit: int, after: str | None
    ) -> tuple[list[StoredSession], str | None]:
        """Up to ``limit`` of a user's sessions in a course in session-id order, after session ``after``,
        and the session id the next page starts after (None on the last page). Tombstones are skipped."""
        # One more than asked: whether it exists says whether this is the last page.
        request = {**self._course_query(user_id, course_id), "Limit": limit + 1}
        request["FilterExpression"] = "attribute_not_exists(#d)"
        if after is not None:
            request["ExclusiveStartKey"] = codec.item_key(user_id, course_id, after)
        sessions: list[StoredSession] = []
        async with contextlib.aclosing(self._pages(request)) as pages:
            async for items in pages:
                sessions.extend(codec.decode(item) for item in items)
                if len(sessions) > limit:
                    break
                # Past tombstones: read on in DynamoDB's own 1 MB pages, not a page's worth at a time.
                request.pop("Limit", None)
        page = sessions[:limit]
        return page, page[-1].stats.session_id if len(sessions) > limit else None

    async def row_revision(self, course_id: str, user_id: str) -> int | None:
        """The revision of a learner's roster row, None if they have none."""
        with dynamodb_errors("GetItem"):
            response = await self._wire.get_item(
                TableName=self._table,
                Key=codec.row_key(course_id, user_id),
                ConsistentRead=True,
                ProjectionExpression="#rev",
                ExpressionAttributeNames={"#rev": codec.REVISION},
            )
        item = response.get("Item")
        return int(item[codec.REVISION]["N"]) if item else None

    async def put_row(self, course_id: str, row: LearnerRow, read: int | None) -> bool:
        """Store a learner's roster row if its revision is still ``read`` (None: still absent); whether it was."""
        values = {f":{name}": value for name, value in codec.row_values(row).items()}
        condition = _ROW_ABSENT
        if read is not None:
            values[":read"], condition = {"N": str(read)}, _ROW_UNCHANGED
        key = codec.row_key(course_id, row.user_id)
        applied, _ = await self._update(key, _ROW_EXPRESSION, condition, _ROW_NAMES, values, returns="NONE")
        return applied

    async def delete_row(self, course_id: str, user_id: str, read: int | Literal["any"] | None = "any") -> bool:
        """Delete a learner's roster row if its revision is still ``read`` (None: still absent; "any":
        whatever it is); whether it was."""
        request: dict[str, Any] = {"TableName": self._table, "Key": codec.row_key(course_id, user_id)}
        if read != "any":
            request["ExpressionAttributeNames"] = {"#rev": codec.REVISION}
            request["ConditionExpression"] = _ROW_ABSENT if read is None else _ROW_UNCHANGED
            if read is not None:
                request["ExpressionAttributeValues"] = {":read": {"N": str(read)}}
        with dynamodb_errors("DeleteItem"):
            try:
                await self._client.delete_item(**request)
            except ClientError as exc:
                if not _refused(exc):
                    raise
                return False
        return True

    async def roster_page(
        self, course_id: str, limit: int, after: tuple[int, str | None]
    ) -> tuple[list[LearnerRow], tuple[int, str | None] | None]:
        """Up to ``limit`` learners with a session in the course, shard by shard from ``after``
        (a shard and the learner it starts after), and where the next page starts (None on the last)."""
        rows: list[tuple[int, LearnerRow]] = []
        shard, after_user = after
        while shard < codec.ROSTER_SHARDS:
            partition = codec.roster_partition(course_id, shard)
            request = self._partition_query(partition)
            # A row with no session left is kept for its revision, and never listed.
            request["FilterExpression"] = "#n > :zero"
            request["ExpressionAttributeNames"]["#n"] = "n"
            request["ExpressionAttributeValues"][":zero"] = {"N": "0"}
            request["Limit"] = limit + 1 - len(rows)
            if after_user is not None:
                request["ExclusiveStartKey"] = {
                    codec.PARTITION_KEY: {"S": partition},
                    codec.SORT_KEY: {"S": after_user},
                }
            async with contextlib.aclosing(self._pages(request)) as pages:
                async for items in pages:
                    rows.extend((shard, codec.decode_row(item)) for item in items)
                    if len(rows) > limit:
                        last_shard, last = rows[limit - 1]
                        return [row for _, row in rows[:limit]], (last_shard, last.user_id)
            shard, after_user = shard + 1, None
        return [row for _, row in rows], None

    async def roster(self, course_id: str) -> list[LearnerRow]:
        """Every row of a course's roster, empty ones included: its partitions read at once,
        each a strongly consistent page at a time."""

        async def shard_rows(shard: int) -> list[LearnerRow]:
            partition = self._partition_query(codec.roster_partition(course_id, shard))
            return [codec.decode_row(item) async for items in self._pages(partition) for item in items]

        reads = [asyncio.ensure_future(shard_rows(shard)) for shard in range(codec.ROSTER_SHARDS)]
        try:
            shards = await asyncio.gather(*reads)
        finally:
            # The first failure (or a cancellation) stops the other partitions' reads, each awaited to its end.
            for read in reads:
                read.cancel()
            await asyncio.gather(*reads, return_exceptions=True)
        return [row for rows in shards for row in rows]

    async def holds_items(self, user_id: str) -> bool:
        """Whether any item of the user is left (one key read)."""
        with dynamodb_errors("Query"):
            response = await self._wire.query(**self._partition_query(user_id), Limit=1)
        return bool(response.get("Items"))

    async def erase(self, user_id: str) -> set[str]:
        """Remove every item of a user, tombstones included; the courses they had items in."""
        request = self._partition_query(user_id)
        request["ExpressionAttributeNames"]["#sk"] = codec.SORT_KEY
        request["ProjectionExpression"] = "#pk, #sk"
        courses: set[str] = set()
        gate = asyncio.Semaphore(_ERASE_CONCURRENCY)
        # Deletes start while later pages are read; the first failure stops the rest.
        deletes: list[asyncio.Future[None]] = []
        try:
            async for items in self._pages(request):
                courses.update(item[codec.SORT_KEY]["S"].partition("#")[0] for item in items)
                for start in range(0, len(items), _BATCH_WRITE):
                    deletes.append(asyncio.ensure_future(self._delete_items(items[start : start + _BATCH_WRITE], gate)))
            await asyncio.gather(*deletes)
        finally:
            for delete in deletes:
                delete.cancel()
            # Every delete's end is awaited, so no failure goes unretrieved and none outlives the client.
            await asyncio.gather(*deletes, return_exceptions=True)
        return courses

    async def _delete_items(self, keys: Sequence[dict[str, Any]], gate: asyncio.Semaphore) -> None:
        requests: list[Any] = [{"DeleteRequest": {"Key": key}} for key in keys]
        async with gate:
            for attempt in range(_UNPROCESSED_ATTEMPTS):
                with dynamodb_errors("BatchWriteItem"):
                    response = await self._client.batch_write_item(RequestItems={self._table: requests})
                # Throttled items come back unprocessed: send them again, backing off as botocore would.
                requests = response.get("UnprocessedItems", {}).get(self._table, [])
                if not requests:
                    return
                await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))
        raise DependencyUnavailable("dynamodb", "BatchWriteItem/UnprocessedItems")

    async def stream_arn(self) -> str | None:
        """The table's stream, if it has one."""
        with dynamodb_errors("DescribeTable"):
            table = (await self._client.describe_table(TableName=self._table))["Table"]
        return table.get("LatestStreamArn") if table.get("StreamSpecification", {}).get("StreamEnabled") else None

    async def ping(self) -> None:
        with dynamodb_errors("DescribeTable"):
            await self._client.describe_table(TableName=self._table)
