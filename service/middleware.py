"""The request envelope: request id, deadline, the one JSON error format, metrics, access log."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Mapping

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from service import keys
from service.errors import DependencyUnavailable, ServiceError
from service.logs import hash_user

log = logging.getLogger("service.request")

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's request id is echoed only if it is short and harmless in a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_HTTP_CODES = {
    404: ("not_found", "No such route."),
    405: ("method_not_allowed", "Method not allowed on this route."),
    413: ("payload_too_large", "Request body is too large."),
}


def error_response(
    status: int,
    code: str,
    message: str,
    fields: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Every error the service answers is built here, in one envelope."""
    error: dict[str, object] = {"code": code, "message": message}
    if fields:
        error["fields"] = dict(fields)
    return web.Response(
        status=status,
        body=orjson.dumps({"error": error}),
        content_type="application/json",
        headers=headers,
    )


def _from_service_error(exc: ServiceError, retry_after: int) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if isinstance(exc, DependencyUnavailable) else None
    return error_response(exc.status, exc.code, exc.message, exc.fields, headers)


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return error_response(exc.status, code, message, headers=headers)


def _deadline_exceeded(request: web.Request, request_id: str, retry_after: int) -> web.Response:
    log.warning("request deadline exceeded", extra={"request_id": request_id, "path": request.path})
    return _from_service_error(DependencyUnavailable("a dependency", "deadline exceeded"), retry_after)


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    settings = app[keys.SETTINGS]
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    # 128 random bits as 32 hex digits, as uuid4().hex gave, for a fraction of its cost.
    request_id = incoming if _REQUEST_ID.match(incoming) else os.urandom(16).hex()
    started = time.perf_counter()
    # Inline rather than in a wrapper coroutine: every await layer costs on every resumption.
    deadlines = app[keys.DEADLINES]
    task = deadlines.enter(settings.request_deadline_seconds)
    response: web.StreamResponse
    try:
        response = await handler(request)
    except asyncio.CancelledError:
        if not deadlines.overran(task):
            raise
        response = _deadline_exceeded(request, request_id, settings.retry_after_seconds)
    except ServiceError as exc:
        response = _from_service_error(exc, settings.retry_after_seconds)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _from_http_exception(exc)
    except TimeoutError:
        response = _deadline_exceeded(request, request_id, settings.retry_after_seconds)
    except Exception:
        log.exception("unhandled error", extra={"request_id": request_id, "path": request.path})
        response = error_response(500, "internal_error", "Internal error; it has been logged.")
    finally:
        deadlines.leave(task)
    response.headers[REQUEST_ID_HEADER] = request_id
    elapsed = time.perf_counter() - started
    route = _route_name(request)
    app[keys.METRICS].observe_request(request.method, route, response.status, elapsed)
    if settings.access_log:
        user = request.headers.get("X-User-Id")
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
