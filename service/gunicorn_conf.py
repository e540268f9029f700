"""Gunicorn settings for the container, taken from the service's own validated ``Settings``.

Used as ``gunicorn --config python:service.gunicorn_conf service.main:app_factory``.
A bad ``STATS_*`` value stops gunicorn here, before any worker forks, with one
line naming the variable.

With several workers, ``/metrics`` must be the task's view, not the one worker's that
answered: the workers share prometheus_client's multiprocess files in
``PROMETHEUS_MULTIPROC_DIR`` (the image sets it), emptied here before the first fork, and
a worker's live gauges are removed when it exits. With one worker the variable is dropped
before the fork, so that worker keeps its metrics in its own memory, as ``python -m service`` does.
"""

import glob
import os
import sys
from typing import Any

from service.settings import ConfigError, load_settings

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

try:
    _settings = load_settings()
except ConfigError as exc:
    print(f"configuration error: {exc}", file=sys.stderr)
    sys.exit(2)

_metrics_dir = os.environ.pop(MULTIPROC_DIR, "") if _settings.workers == 1 else os.environ.get(MULTIPROC_DIR, "")
if _settings.workers > 1 and not _metrics_dir:
    print(f"configuration error: STATS_WORKERS: {_settings.workers} workers need {MULTIPROC_DIR}", file=sys.stderr)
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


def on_starting(server: Any) -> None:
    """A previous run's files would add its counts to this one's."""
    if _settings.workers == 1:
        return
    os.makedirs(_metrics_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(_metrics_dir, "*.db")):
        os.remove(stale)


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's counters stay in the task's totals; its live gauges go."""
    if _settings.workers > 1:
        # Imported only here: prometheus_client fixes its kind of values when imported, and a worker
        # forked from this process inherits that choice, which must follow the variable as set above.
        from prometheus_client.multiprocess import mark_process_dead  # noqa: PLC0415

        mark_process_dead(worker.pid, _metrics_dir)  # type: ignore[no-untyped-call]
