"""One JSON object per log line, so CloudWatch Logs Insights can query any field."""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from typing import Any

import orjson
from opentelemetry import trace

# Attributes every LogRecord has; anything else was passed through ``extra``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, value) for key, value in record.__dict__.items() if key not in _STANDARD)
        span = trace.get_current_span()
        if span.is_recording():  # never while traces are off: no span is then current
            entry.update(trace_fields(span.get_span_context()))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def trace_fields(context: trace.SpanContext) -> dict[str, str]:
    """A span's ids as a log line carries them: the OTel hex form and X-Ray's, so CloudWatch can link the two."""
    trace_id = f"{context.trace_id:032x}"
    return {
        "trace_id": trace_id,
        "span_id": f"{context.span_id:016x}",
        "xray_trace_id": f"1-{trace_id[:8]}-{trace_id[8:]}",
    }


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log is replaced by the service's JSON request line.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def hash_user(user_id: str) -> str:
    """A stable pseudonym: requests of one user can be correlated, the id is not logged."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:16]
