"""``python -m service``: run the service in one process against the endpoints its settings name.

``scripts/run`` (``python -m localmode``) starts local servers first for the
endpoints that are not set; the container runs gunicorn (``service.main``).
"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

from service.app import create_app, freeze_heap_after_startup
from service.settings import ConfigError, Settings, load_settings
from service.telemetry.logs import configure_logging


def load_or_exit() -> Settings:
    """The validated settings, or one line naming the bad variable and exit status 2."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level)
    return settings


def serve(settings: Settings) -> None:
    web.run_app(
        freeze_heap_after_startup(create_app(settings)),
        host=settings.host,
        port=settings.port,
        access_log=None,
        shutdown_timeout=settings.shutdown_grace_seconds,
        loop=uvloop.new_event_loop(),
        print=lambda message: print(message, file=sys.stderr, flush=True),
    )


def main() -> int:
    settings = load_or_exit()
    if settings.redis_url is None or (settings.is_local and settings.dynamodb_endpoint is None):
        print(
            "configuration error: STATS_REDIS_URL and, in local mode, STATS_DYNAMODB_ENDPOINT are required; "
            "scripts/run starts local servers for the ones that are not set",
            file=sys.stderr,
        )
        return 2
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
