"""Every error the service answers, mapped to HTTP and built here, in one envelope.

``{"error": {"code": ..., "message": ..., "fields": {...}}}``: domain errors
(``service.domain.errors``), aiohttp's own 404/405/413, the request deadline
and genuine bugs (a bare 500 that names nothing internal) all end up here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from aiohttp import web

from service.domain.errors import (
    Conflict,
    DependencyUnavailable,
    NotFound,
    NotReady,
    PayloadTooLarge,
    RateLimited,
    ServiceError,
    UnsupportedMediaType,
    ValidationFailed,
)
from service.domain.identity import Forbidden, Unauthenticated
from service.http.contract import MAX_BATCH_BODY_BYTES
from service.telemetry.metrics import Metrics

log = logging.getLogger("service.request")

# Domain error -> (status, machine code). Subclasses map as their nearest listed base.
STATUS: dict[type[ServiceError], tuple[int, str]] = {
    ValidationFailed: (400, "validation_error"),
    Unauthenticated: (401, "unauthenticated"),
    Forbidden: (403, "forbidden"),
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
    PayloadTooLarge: (413, "payload_too_large"),
    UnsupportedMediaType: (415, "unsupported_media_type"),
    RateLimited: (429, "rate_limited"),
    DependencyUnavailable: (503, "service_unavailable"),
    NotReady: (503, "not_ready"),
}

_HTTP_CODES = {
    404: ("not_found", "No such route."),
    405: ("method_not_allowed", "Method not allowed on this route."),
}


def error_response(
    status: int,
    code: str,
    message: str,
    fields: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    error: dict[str, object] = {"code": code, "message": message}
    if fields:
        error["fields"] = dict(fields)
    return web.Response(
        status=status,
        body=orjson.dumps({"error": error}),
        content_type="application/json",
        headers=headers,
    )


def status_of(exc: ServiceError) -> tuple[int, str]:
    """The status and machine code that answer ``exc``."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500, "internal_error"


def from_service_error(exc: ServiceError, *, retry_after: int, metrics: Metrics, request_id: str) -> web.Response:
    status, code = status_of(exc)
    headers = {"Retry-After": str(retry_after)} if status in (429, 503) else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="learning-stats"'}
    if isinstance(exc, DependencyUnavailable):
        report_unavailable(exc, metrics=metrics, request_id=request_id)
    return error_response(status, code, exc.message, exc.fields, headers)


def report_unavailable(exc: DependencyUnavailable, *, metrics: Metrics, request_id: str) -> None:
    """The cause goes to operators (log line, metric), never to the client."""
    metrics.dependency_errors.labels(exc.dependency, exc.reason).inc()
    log.warning(
        "dependency unavailable", extra={"request_id": request_id, "dependency": exc.dependency, "reason": exc.reason}
    )


def from_http_exception(exc: web.HTTPException, *, retry_after: int, metrics: Metrics, request_id: str) -> web.Response:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return from_service_error(
            # aiohttp refuses only bodies over the application's limit, the largest any route takes.
            PayloadTooLarge(MAX_BATCH_BODY_BYTES),
            retry_after=retry_after,
            metrics=metrics,
            request_id=request_id,
        )
    code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return error_response(exc.status, code, message, headers=headers)


def deadline_exceeded(*, path: str, retry_after: int, metrics: Metrics, request_id: str) -> web.Response:
    # Which dependency was slow is not known here: the request as a whole ran out of time.
    metrics.dependency_errors.labels("request", "deadline_exceeded").inc()
    log.warning("request deadline exceeded", extra={"request_id": request_id, "path": path})
    status, code = STATUS[DependencyUnavailable]
    message = "a dependency is unavailable, retry later"
    return error_response(status, code, message, headers={"Retry-After": str(retry_after)})


def internal_error() -> web.Response:
    return error_response(500, "internal_error", "Internal error; it has been logged.")
