"""Registered courses and who teaches them, in the sessions' table.

Two kinds of item: a course (partition ``courses``, sort key the course id;
``title``, and ``teachers``, a string set) and an assignment (partition
``teaches#<userId>``, sort key the course id), so that an admin's listing is a
Query of one partition and a teacher's of their own. Courses are registered and
assigned by admins, a few writes a day: one partition holds them all.

An assignment and the course's ``teachers`` change together, in one
transaction: whoever may read a course's figures is exactly who the course
lists. A transaction costs twice the WRU of its writes: 4 for an assignment
or a removal, rare next to session writes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from service.domain.errors import NotFound
from service.domain.model import Course
from service.dynamodb import codec
from service.dynamodb.store import dynamodb_errors

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

_TITLE, _TEACHERS = "title", "teachers"
# BatchGetItem's limit of keys per call.
_BATCH_GET = 100


def _course_key(course_id: str) -> dict[str, Any]:
    return {codec.PARTITION_KEY: {"S": codec.CATALOG}, codec.SORT_KEY: {"S": course_id}}


def _assignment_key(user_id: str, course_id: str) -> dict[str, Any]:
    return {codec.PARTITION_KEY: {"S": codec.teaching_partition(user_id)}, codec.SORT_KEY: {"S": course_id}}


def _course(item: dict[str, Any]) -> Course:
    teachers = tuple(sorted(item.get(_TEACHERS, {}).get("SS", [])))
    return Course(item[codec.SORT_KEY]["S"], item[_TITLE]["S"], teachers)


class CourseCatalog:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    async def register(self, course_id: str, title: str) -> tuple[bool, Course]:
        """Register a course or rename it; whether it is new, and the course as stored."""
        with dynamodb_errors("UpdateItem"):
            response = await self._client.update_item(
                TableName=self._table,
                Key=_course_key(course_id),
                UpdateExpression="SET #title = :title",
                ExpressionAttributeNames={"#title": _TITLE},
                ExpressionAttributeValues={":title": {"S": title}},
                # What it was says whether it is new, and who teaches it.
                ReturnValues="ALL_OLD",
            )
        old = response.get("Attributes")
        teachers = () if old is None else _course({**old, _TITLE: {"S": title}}).teachers
        return old is None, Course(course_id, title, teachers)

    async def course(self, course_id: str) -> Course | None:
        with dynamodb_errors("GetItem"):
            response = await self._client.get_item(
                TableName=self._table, Key=_course_key(course_id), ConsistentRead=True
            )
        item = response.get("Item")
        return _course(item) if item else None

    async def assign(self, course_id: str, user_id: str, *, teaches: bool) -> None:
        """Make a user teach a registered course, or stop; ``NotFound`` if it is not registered."""
        change = "ADD" if teaches else "DELETE"
        course = {
            "Update": {
                "TableName": self._table,
                "Key": _course_key(course_id),
                "UpdateExpression": f"{change} #teachers :user",
                "ConditionExpression": "attribute_exists(#title)",
                "ExpressionAttributeNames": {"#teachers": _TEACHERS, "#title": _TITLE},
                "ExpressionAttributeValues": {":user": {"SS": [user_id]}},
            }
        }
        key = _assignment_key(user_id, course_id)
        # An Update rather than a Put: the task role's actions stay those it has for sessions.
        assignment = (
            {
                "Update": {
                    "TableName": self._table,
                    "Key": key,
                    "UpdateExpression": "SET #assigned = :yes",
                    "ExpressionAttributeNames": {"#assigned": "assigned"},
                    "ExpressionAttributeValues": {":yes": {"BOOL": True}},
                }
            }
            if teaches
            else {"Delete": {"TableName": self._table, "Key": key}}
        )
        with dynamodb_errors("TransactWriteItems"):
            try:
                await self._client.transact_write_items(TransactItems=[course, assignment])  # type: ignore[list-item]
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons", [])
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    raise NotFound("no such course: register it with PUT /admin/courses/{courseId}") from None
                raise

    async def teaches(self, user_id: str, course_id: str) -> bool:
        with dynamodb_errors("GetItem"):
            response = await self._client.get_item(
                TableName=self._table, Key=_assignment_key(user_id, course_id), ConsistentRead=True
            )
        return "Item" in response

    async def page(self, limit: int, after: str | None, teacher: str | None = None) -> tuple[list[Course], str | None]:
        """Up to ``limit`` courses in id order after ``after`` (all, or those ``teacher`` teaches),
        and the course id the next page starts after (None on the last)."""
        partition = codec.CATALOG if teacher is None else codec.teaching_partition(teacher)
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :p",
            "ExpressionAttributeNames": {"#pk": codec.PARTITION_KEY},
            "ExpressionAttributeValues": {":p": {"S": partition}},
            "ConsistentRead": True,
            "Limit": limit + 1,
        }
        if after is not None:
            request["ExclusiveStartKey"] = {codec.PARTITION_KEY: {"S": partition}, codec.SORT_KEY: {"S": after}}
        with dynamodb_errors("Query"):
            items = (await self._client.query(**request)).get("Items", [])
        more = len(items) > limit
        items = items[:limit]
        ids = [item[codec.SORT_KEY]["S"] for item in items]
        courses = [_course(item) for item in items] if teacher is None else await self._courses(ids)
        return courses, ids[-1] if more else None

    async def _courses(self, course_ids: list[str]) -> list[Course]:
        """Courses by id, in the order given; a course removed meanwhile is left out."""
        found: dict[str, Course] = {}

        async def get(keys: list[dict[str, Any]]) -> None:
            while keys:
                with dynamodb_errors("BatchGetItem"):
                    response = await self._client.batch_get_item(
                        RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
                    )
                found.update((course.course_id, course) for course in map(_course, response["Responses"][self._table]))
                unprocessed: dict[str, Any] = dict(response.get("UnprocessedKeys", {}))
                keys = list(unprocessed.get(self._table, {}).get("Keys", []))

        chunks = [course_ids[i : i + _BATCH_GET] for i in range(0, len(course_ids), _BATCH_GET)]
        await asyncio.gather(*(get([_course_key(course_id) for course_id in chunk]) for chunk in chunks))
        return [found[course_id] for course_id in course_ids if course_id in found]
