"""DynamoDB session store: the source of truth.

One table. An item is one session: partition key ``userId``, sort key
``sessionKey = "<courseId>#<sessionId>"``, so one user's sessions in one course
are a single ``Query`` on the key (no ``Scan`` anywhere).

Every change of an item increments its ``version`` atomically in the same
``UpdateItem``; the Redis aggregates order contributions by it (see
``service.cache``). Re-posting identical values is refused by a condition, so
it neither bumps the version nor rewrites the item.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from service.errors import DependencyUnavailable
from service.model import SessionStats, StoredSession, WriteOutcome

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

PARTITION_KEY = "userId"
SORT_KEY = "sessionKey"

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

_NAMES = {"#m": "modules", "#s": "score", "#t": "timeMs", "#v": "version", "#u": "updatedAt"}
_UPSERT_EXPRESSION = "SET #m = :m, #s = :s, #t = :t, #u = :now ADD #v :one"
# Identical values fail the condition: nothing is written and the version stays.
_CHANGED_CONDITION = "attribute_not_exists(#v) OR #m <> :m OR #s <> :s OR #t <> :t"
_PROJECTION = "#sk, #m, #s, #t, #v"
_PROJECTION_NAMES = {"#sk": SORT_KEY, "#m": "modules", "#s": "score", "#t": "timeMs", "#v": "version"}


def session_key(course_id: str, session_id: str) -> str:
    return f"{course_id}#{session_id}"


@contextlib.contextmanager
def dynamodb_errors(operation: str) -> Iterator[None]:
    """Translate unreachable, slow or throttled DynamoDB into a 503-class error."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _TRANSIENT_CODES:
            log.warning("dynamodb %s failed: %s", operation, code)
            raise DependencyUnavailable("dynamodb", code) from exc
        raise
    except BotoCoreError as exc:
        log.warning("dynamodb %s failed: %s", operation, type(exc).__name__)
        raise DependencyUnavailable("dynamodb", type(exc).__name__) from exc


def _from_item(item: dict[str, Any]) -> StoredSession:
    stats = SessionStats(
        session_id=item[SORT_KEY]["S"].partition("#")[2],
        modules=int(item["modules"]["N"]),
        score_cents=int(item["score"]["N"]),
        time_ms=int(item["timeMs"]["N"]),
    )
    return StoredSession(stats, int(item["version"]["N"]))


class SessionStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    async def upsert(self, user_id: str, course_id: str, stats: SessionStats) -> tuple[WriteOutcome, StoredSession]:
        """Create or replace one session; identical values leave it untouched."""
        key = {
            PARTITION_KEY: {"S": user_id},
            SORT_KEY: {"S": session_key(course_id, stats.session_id)},
        }
        values = {
            ":m": {"N": str(stats.modules)},
            ":s": {"N": str(stats.score_cents)},
            ":t": {"N": str(stats.time_ms)},
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
                stored = _from_item(exc.response["Item"])
                return WriteOutcome.UNCHANGED, stored
        stored = _from_item(response["Attributes"])
        outcome = WriteOutcome.CREATED if stored.version == 1 else WriteOutcome.REPLACED
        return outcome, stored

    async def get(self, user_id: str, course_id: str, session_id: str) -> StoredSession | None:
        with dynamodb_errors("GetItem"):
            response = await self._client.get_item(
                TableName=self._table,
                Key={
                    PARTITION_KEY: {"S": user_id},
                    SORT_KEY: {"S": session_key(course_id, session_id)},
                },
                ConsistentRead=True,
                ProjectionExpression=_PROJECTION,
                ExpressionAttributeNames=_PROJECTION_NAMES,
            )
        item = response.get("Item")
        return _from_item(item) if item else None

    async def course_pages(self, user_id: str, course_id: str) -> AsyncIterator[list[StoredSession]]:
        """All of a user's sessions in a course, a strongly consistent page at a time."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :u AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {**_PROJECTION_NAMES, "#pk": PARTITION_KEY},
            "ExpressionAttributeValues": {":u": {"S": user_id}, ":prefix": {"S": f"{course_id}#"}},
            "ConsistentRead": True,
            "ProjectionExpression": _PROJECTION,
        }
        while True:
            with dynamodb_errors("Query"):
                response = await self._client.query(**request)
            yield [_from_item(item) for item in response.get("Items", [])]
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return
            request["ExclusiveStartKey"] = last_key

    async def ping(self) -> None:
        with dynamodb_errors("DescribeTable"):
            await self._client.describe_table(TableName=self._table)
