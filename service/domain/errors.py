"""Domain errors: what went wrong, in the domain's words. ``service.http.errors``
maps each to one HTTP answer; nothing here knows about HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ServiceError(Exception):
    """An error the caller is told about, with a human message and per-field details."""

    def __init__(self, message: str, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields) if fields else None


class ValidationFailed(ServiceError):
    """The request is malformed: a header, an id, a parameter or the body."""


class NotFound(ServiceError):
    """Nothing of this user's matches the request."""


class Conflict(ServiceError):
    """The request contradicts what exists, such as an account for an email that has one."""


class RateLimited(ServiceError):
    """A dependency refuses this caller for now (too many requests or attempts): retry later."""


class UnsupportedMediaType(ServiceError):
    """The body is not JSON."""


class PayloadTooLarge(ServiceError):
    """The body is larger than the route accepts."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"body must be at most {limit_bytes} bytes")


class DependencyUnavailable(ServiceError):
    """A backend is unreachable, too slow or throttling: the caller should retry.

    ``dependency`` and ``reason`` (a short machine-readable cause such as
    ``ThrottlingException`` or ``ReadTimeoutError``) go to the log line and to the
    ``stats_dependency_errors`` metric, never to the client.
    """

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(f"{dependency} is unavailable, retry later")
        self.dependency = dependency
        self.reason = reason


class CacheUnavailable(Exception):
    """Redis failed; callers fall back to DynamoDB, so this never reaches a client."""


class NotReady(ServiceError):
    """A dependency the service needs does not answer; ``fields`` names each and why."""
