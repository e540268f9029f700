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

Clock skew between tasks: of two writes to one session whose stamps are less
than the skew apart, the one stamped later wins, whichever reached the table
last; the other answers 200 with the winner's values (``SUPERSEDED``), so each
client sees what is stored. Fargate tasks keep time with the Amazon Time Sync
Service, so that window is about a millisecond; sequential writes of one
client are further apart than that.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from service.domain.errors import DependencyUnavailable
from service.domain.model import SessionStats, StoredSession, WriteOutcome
from service.dynamodb import codec

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

_NAMES = {"#m": codec.MODULES, "#s": codec.SCORE, "#t": codec.TIME_MS, "#v": codec.VERSION, "#w": codec.WRITTEN_AT}
_UPSERT_EXPRESSION = "SET #m = :m, #s = :s, #t = :t, #w = :now ADD #v :one"
# Identical values fail the first clause: nothing is written and the version stays.
# A stamp no newer than the stored one fails the second: a late attempt writes nothing.
_UPSERT_CONDITION = (
    "(attribute_not_exists(#v) OR #m <> :m OR #s <> :s OR #t <> :t) AND (attribute_not_exists(#w) OR #w < :now)"
)


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


class SessionStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table
        self._clock = _WriteClock()

    async def upsert(self, user_id: str, course_id: str, stats: SessionStats) -> tuple[WriteOutcome, StoredSession]:
        """Create or replace one session; identical values, or a newer stored write, leave it untouched."""
        key = codec.item_key(user_id, course_id, stats.session_id)
        stored_values = codec.stats_values(stats)
        values = {
            ":m": stored_values[codec.MODULES],
            ":s": stored_values[codec.SCORE],
            ":t": stored_values[codec.TIME_MS],
            ":now": {"N": str(self._clock.stamp())},
            ":one": {"N": "1"},
        }
        with dynamodb_errors("UpdateItem"):
            try:
                response = await self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=_UPSERT_EXPRESSION,
                    ConditionExpression=_UPSERT_CONDITION,
                    ExpressionAttributeNames=_NAMES,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                stored = codec.decode(exc.response["Item"])
                same = stored.stats == stats
                return (WriteOutcome.UNCHANGED if same else WriteOutcome.SUPERSEDED), stored
        stored = codec.decode(response["Attributes"])
        outcome = WriteOutcome.CREATED if stored.version == 1 else WriteOutcome.REPLACED
        return outcome, stored

    async def get(self, user_id: str, course_id: str, session_id: str) -> StoredSession | None:
        with dynamodb_errors("GetItem"):
            response = await self._client.get_item(
                TableName=self._table,
                Key=codec.item_key(user_id, course_id, session_id),
                ConsistentRead=True,
                ProjectionExpression=codec.PROJECTION,
                ExpressionAttributeNames=codec.PROJECTION_NAMES,
            )
        item = response.get("Item")
        return codec.decode(item) if item else None

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

    async def course_pages(self, user_id: str, course_id: str) -> AsyncIterator[list[StoredSession]]:
        """All of a user's sessions in a course, a strongly consistent page at a time."""
        request = self._course_query(user_id, course_id)
        while True:
            with dynamodb_errors("Query"):
                response = await self._client.query(**request)
            yield [codec.decode(item) for item in response.get("Items", [])]
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return
            request["ExclusiveStartKey"] = last_key

    async def session_page(
        self, user_id: str, course_id: str, limit: int, after: str | None
    ) -> tuple[list[StoredSession], str | None]:
        """Up to ``limit`` of a user's sessions in a course in session-id order, after session ``after``,
        and the session id the next page starts after (None on the last page)."""
        # One more than asked: whether it exists says whether this is the last page.
        request = {**self._course_query(user_id, course_id), "Limit": limit + 1}
        if after is not None:
            request["ExclusiveStartKey"] = codec.item_key(user_id, course_id, after)
        with dynamodb_errors("Query"):
            response = await self._client.query(**request)
        sessions = [codec.decode(item) for item in response.get("Items", [])]
        more = len(sessions) > limit or (bool(sessions) and "LastEvaluatedKey" in response)
        page = sessions[:limit]
        return page, page[-1].stats.session_id if more and page else None

    async def stream_arn(self) -> str | None:
        """The table's stream, if it has one."""
        with dynamodb_errors("DescribeTable"):
            table = (await self._client.describe_table(TableName=self._table))["Table"]
        return table.get("LatestStreamArn") if table.get("StreamSpecification", {}).get("StreamEnabled") else None

    async def ping(self) -> None:
        with dynamodb_errors("DescribeTable"):
            await self._client.describe_table(TableName=self._table)
