"""The request envelope: request id, deadline, the one JSON error format, metrics, access log."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
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


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    settings = app[keys.SETTINGS]
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        async with asyncio.timeout(settings.request_deadline_seconds):
            response = await handler(request)
    except ServiceError as exc:
        response = _from_service_error(exc, settings.retry_after_seconds)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _from_http_exception(exc)
    except TimeoutError:
        log.warning("request deadline exceeded", extra={"request_id": request_id, "path": request.path})
        deadline = DependencyUnavailable("a dependency", "deadline exceeded")
        response = _from_service_error(deadline, settings.retry_after_seconds)
    except Exception:
        log.exception("unhandled error", extra={"request_id": request_id, "path": request.path})
        response = error_response(500, "internal_error", "Internal error; it has been logged.")
    response.headers[REQUEST_ID_HEADER] = request_id
    elapsed = time.perf_counter() - started
    route = _route_name(request)
    metrics = app[keys.METRICS]
    metrics.requests.labels(request.method, route, str(response.status)).inc()
    metrics.latency.labels(request.method, route).observe(elapsed)
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
