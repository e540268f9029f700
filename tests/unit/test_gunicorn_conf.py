"""Gunicorn's settings come from the service's own validated Settings, not a second reading of the environment."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

CONF = Path(__file__).resolve().parents[2] / "service" / "gunicorn_conf.py"


MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def gunicorn_conf(monkeypatch: pytest.MonkeyPatch, **environ: str) -> dict[str, Any]:
    names = ("STATS_ENV", "STATS_HOST", "STATS_PORT", "STATS_WORKERS", "STATS_SHUTDOWN_GRACE_SECONDS", MULTIPROC_DIR)
    for name in names:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_bind_workers_and_grace_follow_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = gunicorn_conf(
        monkeypatch,
        STATS_HOST="127.0.0.2",
        STATS_PORT="9001",
        STATS_WORKERS="3",
        STATS_SHUTDOWN_GRACE_SECONDS="7",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
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
    # The task's one vCPU; the service scales out with tasks.
    assert conf["workers"] == 1


def configuration_error(**environ: str) -> str:
    """The one line a stopped gunicorn prints."""
    result = subprocess.run(
        [sys.executable, str(CONF)],
        env={"STATS_ENV": "local", "PYTHONPATH": str(CONF.parents[1]), **environ},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    return line


@pytest.mark.parametrize("bad", ["0", "two", "65"])
def test_a_bad_worker_count_stops_gunicorn_with_one_line(bad: str) -> None:
    assert configuration_error(STATS_WORKERS=bad).startswith("configuration error: STATS_WORKERS: ")


def test_several_workers_without_a_shared_metrics_directory_stop_gunicorn() -> None:
    # Each would answer /metrics with its own numbers only.
    line = configuration_error(STATS_WORKERS="2")
    assert line == f"configuration error: STATS_WORKERS: 2 workers need {MULTIPROC_DIR}"


def test_one_worker_keeps_its_metrics_in_its_own_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stale = tmp_path / "counter_1.db"
    stale.write_bytes(b"")
    conf = gunicorn_conf(monkeypatch, STATS_WORKERS="1", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    # Dropped before the fork, so prometheus_client in the worker keeps plain in-memory values.
    assert MULTIPROC_DIR not in os.environ
    conf["on_starting"](None)
    conf["child_exit"](None, SimpleNamespace(pid=1))
    assert stale.exists()


def test_several_workers_start_from_an_empty_directory_and_drop_a_dead_workers_live_gauges(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    conf = gunicorn_conf(monkeypatch, STATS_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(directory))
    assert os.environ[MULTIPROC_DIR] == str(directory)
    conf["on_starting"](None)
    assert directory.is_dir()
    # A previous run's files are emptied away, anything else in the directory is left alone.
    (directory / "counter_7.db").write_bytes(b"")
    (directory / "README").write_text("kept")
    conf["on_starting"](None)
    assert sorted(path.name for path in directory.iterdir()) == ["README"]
    names = ["counter_7.db", "histogram_7.db", "gauge_liveall_7.db", "gauge_livesum_7.db", "gauge_liveall_8.db"]
    for name in names:
        (directory / name).write_bytes(b"")
    conf["child_exit"](None, SimpleNamespace(pid=7))
    assert sorted(path.name for path in directory.glob("*.db")) == [
        "counter_7.db",
        "gauge_liveall_8.db",
        "histogram_7.db",
    ]
