"""The production image: lint, pinning, what it installs, who it runs as, how it starts."""

import importlib.metadata
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

PINNED_SLIM_PYTHON = re.compile(r"python:\d+\.\d+\.\d+-slim-[a-z]+")
# What the container runs: gunicorn's config and app factory (CMD), and the table bootstrap.
ENTRY_POINT_IMPORTS = (
    "import service.gunicorn_conf, service.main, service.dynamodb.table, service.changes.lambda_handler"
)


def test_hadolint_passes_at_warning_level(run_tool: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    result = run_tool("hadolint", "--failure-threshold", "warning", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_build_on_an_exactly_pinned_slim_base(
    dockerfile_args: Callable[[str], list[str]],
) -> None:
    (base_arg,) = [arg for arg in dockerfile_args("ARG") if arg.startswith("PYTHON_IMAGE=")]
    assert PINNED_SLIM_PYTHON.fullmatch(base_arg.removeprefix("PYTHON_IMAGE="))
    assert dockerfile_args("FROM") == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    assert "--from=builder /opt/venv /opt/venv" in dockerfile_args("COPY")


def test_installs_runtime_requirements_only(dockerfile_args: Callable[[str], list[str]], repo_root: Path) -> None:
    requirement_copies = [copy for copy in dockerfile_args("COPY") if "requirements" in copy]
    assert requirement_copies == ["requirements.txt /tmp/requirements.txt"]
    installs = [run for run in dockerfile_args("RUN") if "pip install" in run]
    assert installs == ["/opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt"]
    # The build context itself cannot carry moto or the test tools in by another path.
    allowed = (repo_root / ".dockerignore").read_text().split()
    assert allowed[allowed.index("*") + 1 :].count("!requirements.txt") == 1
    assert not any("requirements-" in line for line in allowed)


def _distributions(requirements: Path) -> set[str]:
    names = set()
    for line in requirements.read_text().splitlines():
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line.strip())
        if match:
            names.add(_normalized(match.group()))
    return names


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_production_entry_points_need_no_local_or_dev_package(repo_root: Path) -> None:
    # The image has requirements.txt only, so its entry points are imported with every module of
    # requirements-local.txt and requirements-dev.txt made unimportable.
    runtime = _distributions(repo_root / "requirements.txt")
    extra = (_distributions(repo_root / name) for name in ("requirements-local.txt", "requirements-dev.txt"))
    not_in_image = set().union(*extra) - runtime
    blocked = sorted(
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        if any(_normalized(owner) in not_in_image for owner in owners)
    )
    assert "moto" in blocked
    code = f"import sys; sys.modules.update(dict.fromkeys({blocked!r})); {ENTRY_POINT_IMPORTS}"
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=repo_root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_runs_as_a_numeric_non_root_user(dockerfile: list[tuple[str, str]]) -> None:
    users = [(index, arguments) for index, (keyword, arguments) in enumerate(dockerfile) if keyword == "USER"]
    assert users, "the image must not run as root"
    last_index, user = users[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) > 0
    assert int(gid) > 0
    assert all(keyword != "RUN" for keyword, _ in dockerfile[last_index:]), "nothing runs after USER as root"


def test_starts_gunicorn_in_production_mode(
    dockerfile_args: Callable[[str], list[str]], dockerfile_env: dict[str, str]
) -> None:
    assert dockerfile_args("CMD") == [
        '["gunicorn", "--config", "python:service.gunicorn_conf", "service.main:app_factory"]'
    ]
    assert dockerfile_args("EXPOSE") == ["8080"]
    assert dockerfile_args("STOPSIGNAL") == ["SIGTERM"]
    assert dockerfile_env["STATS_ENV"] == "production"
    assert dockerfile_env["STATS_PORT"] == "8080"


def test_workers_share_metrics_in_a_directory_of_the_tasks_writable_mount(
    dockerfile_env: dict[str, str], container: dict[str, Any]
) -> None:
    # The root filesystem is read-only on ECS.
    assert container["ReadonlyRootFilesystem"] is True
    (mount,) = container["MountPoints"]
    directory = PurePosixPath(dockerfile_env["PROMETHEUS_MULTIPROC_DIR"])
    assert directory.parent == PurePosixPath(mount["ContainerPath"])
    assert mount["ReadOnly"] is False


def test_git_revision_is_baked_in_at_build_time(
    dockerfile_args: Callable[[str], list[str]], dockerfile_env: dict[str, str]
) -> None:
    assert "GIT_REVISION=unknown" in dockerfile_args("ARG")
    assert dockerfile_env["STATS_GIT_REVISION"] == "$GIT_REVISION"


class _HealthServer(ThreadingHTTPServer):
    status = HTTPStatus.OK


class _HealthHandler(BaseHTTPRequestHandler):
    server: _HealthServer

    def do_GET(self) -> None:
        self.send_response(self.server.status if self.path == "/health" else HTTPStatus.NOT_FOUND)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Silenced: the probe's outcome is asserted instead."""


@pytest.fixture
def health_server() -> Iterator[_HealthServer]:
    with _HealthServer(("127.0.0.1", 0), _HealthHandler) as server:
        # A short poll keeps shutdown() from waiting out the default half second.
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        yield server
        server.shutdown()
        thread.join()


@pytest.mark.parametrize(
    ("status", "healthy"),
    [(HTTPStatus.OK, True), (HTTPStatus.SERVICE_UNAVAILABLE, False), (HTTPStatus.NOT_FOUND, False)],
)
def test_healthcheck_probe_follows_the_health_endpoint(
    dockerfile_healthcheck: list[str], health_server: _HealthServer, status: HTTPStatus, healthy: bool
) -> None:
    # The same probe runs in the image and in the ECS task, so it is executed here for real,
    # against a stand-in server on a free port.
    program, flag, code = dockerfile_healthcheck
    assert (program, flag) == ("python", "-c")
    assert code.count("127.0.0.1:8080/") == 1
    health_server.status = status
    port = health_server.server_address[1]
    probe = code.replace("127.0.0.1:8080/", f"127.0.0.1:{port}/")
    result = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, timeout=30)
    assert (result.returncode == 0) is healthy
