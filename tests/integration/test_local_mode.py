"""The README's first command: ``scripts/run`` with nothing configured, then the README's
accounts walk-through run as written against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from localmode.servers import free_port
from tests.integration.conftest import ROOT, wait_for_http
from tests.integration.support import new_id

pytestmark = pytest.mark.slow


def children_of(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir():
        children = (task / "children").read_text().split()
        found += [int(child) for child in children]
    return found


def http(
    method: str, url: str, user: str, payload: Mapping[str, object] | None = None
) -> tuple[int, dict[str, object]]:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("X-User-Id", user)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def readme_block(heading: str) -> str:
    """The first ``sh`` block after ``heading`` in the README."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index(heading) :]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


def run_accounts_walkthrough(base: str) -> str:
    script = readme_block("### Accounts and tokens")
    env = {**os.environ, "API": base}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def json_values(text: str) -> list[Any]:
    """The JSON values curl printed one after another (it adds no newline)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values


def test_scripts_run_starts_its_own_backends_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("STATS_")}
    env["STATS_PORT"] = str(port)
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(ROOT / "scripts" / "run")], env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/health", process, log_path)
            backends = children_of(process.pid)
            assert len(backends) == 2, "a redis-server and a DynamoDB-compatible server"
            user, course = new_id(), new_id()
            payload = {"totalModulesStudied": 4, "averageScore": 75, "timeStudied": 1000}
            assert http("POST", f"{base}/courses/{course}", user, payload)[0] == 201
            assert http("GET", f"{base}/courses/{course}", user) == (
                200,
                {"totalModulesStudied": 4, "averageScore": 75.0, "timeStudied": 1000, "sessionsCount": 1, "points": 30},
            )
            assert http("GET", f"{base}/ready", user)[0] == 200
            course, session, refreshed, roles = json_values(run_accounts_walkthrough(base))
            assert course["sessionsCount"] == 1
            assert session["averageScore"] == 90.0
            assert set(refreshed) == {"accessToken", "expiresIn"}
            assert roles["roles"] == ["teacher"]
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
    output = log_path.read_text()
    assert code == 0, output
    assert output.count("LOCAL MODE") == 1
    assert "lost when this process stops" in output
    assert "Admin: admin@example.com / LocalAdmin1!" in output
    for pid in backends:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
