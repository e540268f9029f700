"""``python -m service``: run the service (local mode starts its own Redis and DynamoDB)."""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

from service.app import create_app
from service.local import local_dependencies
from service.logs import configure_logging
from service.settings import ConfigError, load_settings


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    with local_dependencies(settings) as resolved:
        web.run_app(
            create_app(resolved),
            host=resolved.host,
            port=resolved.port,
            access_log=None,
            shutdown_timeout=resolved.shutdown_grace_seconds,
            loop=uvloop.new_event_loop(),
            print=lambda message: print(message, file=sys.stderr, flush=True),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
