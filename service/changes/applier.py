"""Stream records (DynamoDB Streams' and Lambda's event shape alike) applied to Redis.

Each INSERT or MODIFY carries the item's new image, applied through the cache's
version rule: idempotent and order-independent, so at-least-once delivery, a
batch retried after a failure, and the request path's own update of the same
write all commute. A REMOVE drops the aggregate, which is then rebuilt from
nothing on its next read (versions cannot order a deletion).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.dynamodb import codec
from service.redis.cache import AggregateCache


class ChangeApplier:
    def __init__(self, cache: AggregateCache) -> None:
        self._cache = cache

    async def apply(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Apply every record in order; raises ``CacheUnavailable`` so that the batch is retried."""
        for record in records:
            change = record["dynamodb"]
            user_id = change["Keys"][codec.PARTITION_KEY]["S"]
            course_id = change["Keys"][codec.SORT_KEY]["S"].partition("#")[0]
            key = self._cache.key(user_id, course_id)
            if record["eventName"] == "REMOVE":
                await self._cache.forget(key)
            elif codec.VERSION in change.get("NewImage", {}):
                await self._cache.apply_change(key, codec.decode(change["NewImage"]))
            # else: an image with no version holds no session values (moto records the
            # empty item an UpdateItem creates before its actions run); nothing to apply.
