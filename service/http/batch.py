"""``POST /courses/{courseId}/sessions/batch``: up to 100 sessions, each an independent upsert.

Each item is what a POST of it alone would be: validated on its own (a bad item
is refused with its own 400 and never blocks the others), then recorded by the
same use case, so the same version rule keeps the aggregate exact. A sessionId
that repeats an earlier item of the batch is refused (400): two values for one
session in one request have no order to apply them in. Items are recorded
concurrently, a bounded number at a time, within a share of the request
deadline; an item not finished by then answers 503 (a retry of it is safe: it
is an idempotent upsert, and its aggregate was marked for repair).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from marshmallow import ValidationError

from service import keys
from service.domain.errors import DependencyUnavailable, ServiceError, ValidationFailed
from service.domain.model import SessionStats, WriteOutcome
from service.http.deadlines import ANSWER_SHARE
from service.http.errors import report_unavailable, status_of
from service.http.schemas import field_messages

# Items recorded at once: each holds a DynamoDB and a Redis call.
CONCURRENCY = 16


def _refused(index: int, exc: ServiceError, session_id: str | None = None) -> dict[str, Any]:
    status, code = status_of(exc)
    # Dumped by the envelope's own ErrorDetail schema.
    error: dict[str, Any] = {"code": code, "message": exc.message}
    if exc.fields:
        error["field_errors"] = exc.fields
    result: dict[str, Any] = {"index": index, "status": status, "error": error}
    if session_id is not None:
        result["session_id"] = session_id
    return result


def _admitted(
    items: list[SessionStats | ValidationError],
) -> tuple[dict[int, dict[str, Any]], list[tuple[int, SessionStats]]]:
    """The items refused before any is recorded, by index, and the others in order."""
    refused: dict[int, dict[str, Any]] = {}
    admitted: list[tuple[int, SessionStats]] = []
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        if isinstance(item, ValidationError):
            refused[index] = _refused(index, ValidationFailed("invalid session stats", field_messages(item)))
        elif item.session_id in first:
            message = f"sessionId repeats item {first[item.session_id]} of this batch"
            refused[index] = _refused(index, ValidationFailed(message, {"sessionId": message}), item.session_id)
        else:
            first[item.session_id] = index
            admitted.append((index, item))
    return refused, admitted


async def record_batch(
    request: web.Request, user_id: str, course_id: str, items: list[SessionStats | ValidationError]
) -> list[dict[str, Any]]:
    """One result per item, in the items' order."""
    app = request.app
    stats, metrics = app[keys.STATS], app[keys.METRICS]
    request_id = request.headers.get("X-Request-Id", "")
    results, admitted = _admitted(items)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def record(index: int, item: SessionStats) -> None:
        async with gate:
            try:
                outcome, stored = await stats.record(user_id, course_id, item)
            except ServiceError as exc:
                if isinstance(exc, DependencyUnavailable):
                    report_unavailable(exc, metrics=metrics, request_id=request_id)
                results[index] = _refused(index, exc, item.session_id)
                return
        status = 201 if outcome is WriteOutcome.CREATED else 200
        results[index] = {"index": index, "status": status, "session_id": stored.session_id}

    try:
        async with asyncio.timeout(app[keys.SETTINGS].request_deadline_seconds * ANSWER_SHARE):
            async with asyncio.TaskGroup() as group:
                for index, item in admitted:
                    group.create_task(record(index, item))
    except TimeoutError:
        late = DependencyUnavailable("request", "batch_deadline_exceeded")
        report_unavailable(late, metrics=metrics, request_id=request_id)
        for index, item in admitted:
            results.setdefault(index, _refused(index, late, item.session_id))
    return [results[index] for index in range(len(items))]
