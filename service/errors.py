"""Domain errors. Each is mapped to one HTTP answer in ``service.middleware``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ServiceError(Exception):
    """An error the client is told about: status, machine code, human message."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields) if fields else None


class ValidationFailed(ServiceError):
    status = 400
    code = "validation_error"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class DependencyUnavailable(ServiceError):
    """A backend is unreachable, too slow or throttling: the client should retry."""

    status = 503
    code = "service_unavailable"

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(f"{dependency} is unavailable, retry later")
        self.dependency = dependency
        self.reason = reason


class CacheUnavailable(Exception):
    """Redis failed; callers fall back to DynamoDB, so this never reaches a client."""
