"""Gunicorn settings for the container: every knob comes from a STATS_* variable.

Used as ``gunicorn --config python:service.gunicorn_conf service.main:app_factory``.
"""

import os
import sys

from service.settings import ConfigError, load_settings

# Inside a container the task's network interface is the only way in.
bind = f"{os.environ.get('STATS_HOST', '0.0.0.0')}:{os.environ.get('STATS_PORT', '8080')}"  # noqa: S104
workers = int(os.environ.get("STATS_WORKERS", "2"))
worker_class = "aiohttp.GunicornUVLoopWebWorker"
# ECS sends SIGTERM and waits stopTimeout; in-flight requests get this long to finish.
graceful_timeout = int(os.environ.get("STATS_SHUTDOWN_GRACE_SECONDS", "25"))
timeout = 60
# One JSON line per request is written by the service itself.
accesslog = None
errorlog = "-"


def on_starting(server: object) -> None:
    """Validate configuration once, before forking workers: one clear line, then exit."""
    try:
        load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
