"""DynamoDB session store: the source of truth.

Items are keyed and encoded by ``service.dynamodb.codec``: one user's sessions
in one course are a single ``Query`` on the key (no ``Scan`` anywhere).

Every change of an item increments its ``version`` atomically in the same
``UpdateItem``; the Redis aggregates order contributions by it (see
``service.redis.cache``). Re-posting identical values is refused by a condition, so
it neither bumps the version nor rewrites the item.
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

_NAMES = {"#m": codec.MODULES, "#s": codec.SCORE, "#t": codec.TIME_MS, "#v": codec.VERSION, "#u": codec.UPDATED_AT}
_UPSERT_EXPRESSION = "SET #m = :m, #s = :s, #t = :t, #u = :now ADD #v :one"
# Identical values fail the condition: nothing is written and the version stays.
_CHANGED_CONDITION = "attribute_not_exists(#v) OR #m <> :m OR #s <> :s OR #t <> :t"


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

    async def upsert(self, user_id: str, course_id: str, stats: SessionStats) -> tuple[WriteOutcome, StoredSession]:
        """Create or replace one session; identical values leave it untouched."""
        key = codec.item_key(user_id, course_id, stats.session_id)
        stored_values = codec.stats_values(stats)
        values = {
            ":m": stored_values[codec.MODULES],
            ":s": stored_values[codec.SCORE],
            ":t": stored_values[codec.TIME_MS],
            ":now": {"N": str(int(time.time() * 1000))},
            ":one": {"N": "1"},
        }
        with dynamodb_errors("UpdateItem"):
            try:
                response = await self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression=_UPSERT_EXPRESSION,
                    ConditionExpression=_CHANGED_CONDITION,
                    ExpressionAttributeNames=_NAMES,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                stored = codec.decode(exc.response["Item"])
                return WriteOutcome.UNCHANGED, stored
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

    async def course_pages(self, user_id: str, course_id: str) -> AsyncIterator[list[StoredSession]]:
        """All of a user's sessions in a course, a strongly consistent page at a time."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :u AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {**codec.PROJECTION_NAMES, "#pk": codec.PARTITION_KEY},
            "ExpressionAttributeValues": {":u": {"S": user_id}, ":prefix": {"S": codec.course_prefix(course_id)}},
            "ConsistentRead": True,
            "ProjectionExpression": codec.PROJECTION,
        }
        while True:
            with dynamodb_errors("Query"):
                response = await self._client.query(**request)
            yield [codec.decode(item) for item in response.get("Items", [])]
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return
            request["ExclusiveStartKey"] = last_key

    async def ping(self) -> None:
        with dynamodb_errors("DescribeTable"):
            await self._client.describe_table(TableName=self._table)
