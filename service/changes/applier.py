"""Stream records (DynamoDB Streams' and Lambda's event shape alike) applied to Redis and the rosters.

Each INSERT or MODIFY of a session carries the item's new image (a tombstone
for a delete), applied to the learner's cached course aggregate and their
points over every course through the cache's version rule: idempotent and
order-independent, so at-least-once delivery, a batch retried after a failure,
and the request path's own update of the same write all commute. A REMOVE
(erasure, or an item removed behind the service) drops both, each rebuilt from
nothing on its next read
(versions cannot order a removal).

Then every (learner, course) the batch touched has its roster row recomputed
from the table (``service.domain.roster``): the course-wide figures follow
every change, and recomputing cannot double count however often a batch is
delivered. The records of rows and of the course catalog are skipped: they are no session's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.domain.errors import CacheUnavailable
from service.domain.model import CourseSession
from service.domain.roster import Roster
from service.dynamodb import codec
from service.redis.cache import AggregateCache


class ChangeApplier:
    def __init__(self, cache: AggregateCache, roster: Roster) -> None:
        self._cache = cache
        self._roster = roster

    async def apply(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Apply every record in order; raises ``CacheUnavailable`` or ``DependencyUnavailable``
        so that the batch is retried.

        A Redis failure does not stop the batch: the roster rows in DynamoDB are recomputed
        all the same (what Redis missed is bounded by the cache's maximum age, the rows have
        no such bound), and the batch is retried once it is through."""
        touched: dict[tuple[str, str], None] = {}
        failure: CacheUnavailable | None = None
        for record in records:
            change = record["dynamodb"]
            user_id = change["Keys"][codec.PARTITION_KEY]["S"]
            if not codec.is_session_partition(user_id):
                continue
            course_id = change["Keys"][codec.SORT_KEY]["S"].partition("#")[0]
            touched[user_id, course_id] = None
            try:
                await self._apply_one(record["eventName"], user_id, course_id, change)
            except CacheUnavailable as exc:
                failure = exc
        for user_id, course_id in touched:
            try:
                await self._roster.refresh(user_id, course_id)
            except CacheUnavailable as exc:
                failure = exc
        if failure is not None:
            raise failure

    async def _apply_one(self, event: str, user_id: str, course_id: str, change: Mapping[str, Any]) -> None:
        """To the learner's course aggregate, and to their points over every course."""
        keys = (self._cache.key(user_id, course_id), self._cache.points_key(user_id))
        if event == "REMOVE":
            for key in keys:
                await self._cache.forget(key)
        elif codec.VERSION in change.get("NewImage", {}):
            stored = codec.decode(change["NewImage"])
            await self._cache.apply_change(keys[0], stored)
            await self._cache.apply_change(keys[1], CourseSession(course_id, stored))
        # else: an image with no version holds no session values (moto records the
        # empty item an UpdateItem creates before its actions run); nothing to apply.
