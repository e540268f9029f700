"""The request envelope: request id, deadline, errors into the one envelope, metrics, access log."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from service import keys
from service.domain.errors import ServiceError
from service.http import errors
from service.telemetry.logs import hash_user

log = logging.getLogger("service.request")

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's request id is echoed only if it is short and harmless in a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    settings = app[keys.SETTINGS]
    metrics = app[keys.METRICS]
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    # 128 random bits as 32 hex digits, as uuid4().hex gave, for a fraction of its cost.
    request_id = incoming if _REQUEST_ID.match(incoming) else os.urandom(16).hex()
    started = time.perf_counter()
    retry_after = settings.retry_after_seconds
    # Inline rather than in a wrapper coroutine: every await layer costs on every resumption.
    deadlines = app[keys.DEADLINES]
    task = deadlines.enter(settings.request_deadline_seconds)
    response: web.StreamResponse
    try:
        response = await handler(request)
    except asyncio.CancelledError:
        if not deadlines.overran(task):
            raise
        response = errors.deadline_exceeded(
            path=request.path, retry_after=retry_after, metrics=metrics, request_id=request_id
        )
    except ServiceError as exc:
        response = errors.from_service_error(exc, retry_after=retry_after, metrics=metrics, request_id=request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = errors.from_http_exception(exc, retry_after=retry_after, metrics=metrics, request_id=request_id)
    except Exception:
        log.exception("unhandled error", extra={"request_id": request_id, "path": request.path})
        response = errors.internal_error()
    finally:
        deadlines.leave(task)
    response.headers[REQUEST_ID_HEADER] = request_id
    elapsed = time.perf_counter() - started
    route = route_name(request)
    metrics.observe_request(request.method, route, response.status, elapsed)
    if settings.access_log:
        # The identified learner (token or trusted header); the raw header when identification failed.
        identity = request.get(keys.IDENTITY)
        user = identity.user_id if identity is not None else request.headers.get("X-User-Id")
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "route": route,
                "status": response.status,
                "duration_ms": round(elapsed * 1000, 3),
                "user": hash_user(user.lower()) if user else None,
            },
        )
    return response
