"""The Lambda function subscribed to the table's stream in production.

It runs from the service's own image (the stack sets the entry point to
``python -m awslambdaric service.changes.lambda_handler.handler``) with the
same ``STATS_*`` settings as the tasks. Lambda hands it batches of stream
records in order per shard; a batch whose update fails raises, and Lambda
retries it (bisecting, so one bad record cannot hold its shard). The cache's
version rule makes retries and at-least-once delivery harmless.

One event loop and one Redis client per execution environment: Lambda reuses
the process across invocations, so connections are kept between batches.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any

from service.changes.applier import ChangeApplier
from service.redis.breaker import CircuitBreaker
from service.redis.cache import AggregateCache
from service.redis.client import redis_client
from service.redis.failover import PrimaryWatch
from service.settings import load_settings


class _Runtime:
    def __init__(self) -> None:
        settings = load_settings()
        assert settings.redis_url is not None, "production settings require STATS_REDIS_URL"
        self.loop = asyncio.new_event_loop()
        watch = PrimaryWatch()
        self.redis = redis_client(settings.redis_url, settings.redis_timeout_seconds, watch)
        self.cache = AggregateCache(
            self.redis,
            ttl_seconds=settings.cache_ttl_seconds,
            max_age_seconds=settings.cache_max_age_seconds,
            lock_seconds=settings.rebuild_lock_seconds,
            breaker=CircuitBreaker(),
            watch=watch,
        )
        self.applier = ChangeApplier(self.cache)


@functools.cache
def _runtime() -> _Runtime:
    return _Runtime()


def handler(event: Mapping[str, Any], context: object) -> dict[str, int]:
    """Apply one batch of stream records; raising makes Lambda retry the batch."""
    runtime = _runtime()
    records = list(event.get("Records", []))
    runtime.loop.run_until_complete(runtime.applier.apply(records))
    return {"applied": len(records)}
