"""Gunicorn's settings come from the service's own validated Settings, not a second reading of the environment."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CONF = Path(__file__).resolve().parents[2] / "service" / "gunicorn_conf.py"


def gunicorn_conf(monkeypatch: pytest.MonkeyPatch, **environ: str) -> dict[str, Any]:
    for name in ("STATS_ENV", "STATS_HOST", "STATS_PORT", "STATS_WORKERS", "STATS_SHUTDOWN_GRACE_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_bind_workers_and_grace_follow_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = gunicorn_conf(
        monkeypatch, STATS_HOST="127.0.0.2", STATS_PORT="9001", STATS_WORKERS="3", STATS_SHUTDOWN_GRACE_SECONDS="7"
    )
    assert (conf["bind"], conf["workers"], conf["graceful_timeout"]) == ("127.0.0.2:9001", 3, 7)


def test_the_production_profile_runs_one_worker_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = gunicorn_conf(
        monkeypatch,
        STATS_ENV="production",
        STATS_REDIS_URL="redis://cache:6379",
        STATS_DYNAMODB_TABLE="stats",
        AWS_REGION="eu-west-1",
        STATS_TRUST_USER_HEADER="true",
        STATS_CURSOR_SECRET="x" * 32,
    )
    # One worker per task keeps /metrics one coherent view of the task.
    assert conf["workers"] == 1


@pytest.mark.parametrize("bad", ["0", "two", "65"])
def test_a_bad_worker_count_stops_gunicorn_with_one_line(bad: str) -> None:
    result = subprocess.run(
        [sys.executable, str(CONF)],
        env={"STATS_ENV": "local", "STATS_WORKERS": bad, "PYTHONPATH": str(CONF.parents[1])},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("configuration error: STATS_WORKERS: ")
