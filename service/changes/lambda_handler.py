"""The Lambda function subscribed to the table's stream in production.

It runs from the service's own image (the stack sets the entry point to
``python -m awslambdaric service.changes.lambda_handler.handler``) with the
same ``STATS_*`` settings as the tasks. Lambda hands it batches of stream
records in order per shard; a batch whose update fails raises, and Lambda
retries it (bisecting, so one bad record cannot hold its shard). The cache's
version rule makes retries and at-least-once delivery harmless.

One event loop, one Redis client and one DynamoDB client per execution
environment: Lambda reuses the process across invocations, so connections are
kept between batches. The DynamoDB client recomputes roster rows
(``service.domain.roster``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping
from typing import Any

from service.changes.applier import ChangeApplier
from service.domain.roster import Roster
from service.dynamodb.client import dynamodb
from service.dynamodb.store import SessionStore
from service.redis.client import open_cache
from service.settings import load_settings


class _Runtime:
    def __init__(self) -> None:
        settings = load_settings()
        self.loop = asyncio.new_event_loop()
        self.redis, self.cache = open_cache(settings)
        # Kept open for the environment's life; Lambda freezes and ends the process itself.
        self.clients = contextlib.AsyncExitStack()
        dynamodb_clients = self.loop.run_until_complete(self.clients.enter_async_context(dynamodb(settings)))
        store = SessionStore(dynamodb_clients, settings.dynamodb_table)
        self.applier = ChangeApplier(self.cache, Roster(store, self.cache))


@functools.cache
def _runtime() -> _Runtime:
    return _Runtime()


def handler(event: Mapping[str, Any], context: object) -> dict[str, int]:
    """Apply one batch of stream records; raising makes Lambda retry the batch."""
    runtime = _runtime()
    records = list(event.get("Records", []))
    runtime.loop.run_until_complete(runtime.applier.apply(records))
    return {"applied": len(records)}
