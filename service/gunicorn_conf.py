"""Gunicorn settings for the container, taken from the service's own validated ``Settings``.

Used as ``gunicorn --config python:service.gunicorn_conf service.main:app_factory``.
A bad ``STATS_*`` value stops gunicorn here, before any worker forks, with one
line naming the variable.
"""

import sys

from service.settings import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as exc:
    print(f"configuration error: {exc}", file=sys.stderr)
    sys.exit(2)

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "aiohttp.GunicornUVLoopWebWorker"
# ECS sends SIGTERM and waits stopTimeout; in-flight requests get this long to finish.
graceful_timeout = int(_settings.shutdown_grace_seconds)
timeout = 60
# One JSON line per request is written by the service itself.
accesslog = None
errorlog = "-"
