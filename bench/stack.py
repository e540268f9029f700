"""The benchmarked stack on this machine: a real redis-server, the DynamoDB stand-in
(``bench.dynamo``), moto's server for the bench's Cognito user pool, and gunicorn
serving either the service or the bare aiohttp baseline, all with the production
profile.

The benchmark process pins itself (and so every child it starts without an
explicit core: redis-server, the DynamoDB stand-in, moto's server, wrk) to the load core, and the
server under test to the server core, so the two never compete for a CPU.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from localmode.servers import RedisServer, _die_with_parent, free_port
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TABLE = "learning-stats-bench"
REGION = "us-east-1"
SERVICE_APP = "service.main:app_factory"
BARE_APP = "bench.bare:app_factory"


def _pin_process(core: int) -> None:
    """Every thread of this process onto ``core`` (the event loop's resolver threads too)."""
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(int(task), {core})


@dataclass(frozen=True)
class Cores:
    """Where the server and the load generator run; None when pinning is not possible."""

    server: int | None
    load: int | None

    @classmethod
    def detect(cls) -> Cores:
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls(available[0], available[-1])

    def pin_self_to_load(self) -> None:
        if self.load is not None:
            _pin_process(self.load)

    @contextlib.contextmanager
    def server_core(self) -> Iterator[None]:
        """This process on the server's core for a while (for baselines measured in-process)."""
        if self.server is None or self.load is None:
            yield
            return
        _pin_process(self.server)
        try:
            yield
        finally:
            _pin_process(self.load)

    def on_server(self, command: list[str]) -> list[str]:
        if self.server is None:
            return command
        return ["taskset", "-c", str(self.server), *command]


class TcpRedisServer(RedisServer):
    """redis-server on loopback TCP, as the service reaches ElastiCache (its unix socket stays for the probe)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--port") + 1] = str(self.port)
        return [*command, "--bind", "127.0.0.1"]


def production_env(redis_url: str, dynamodb_endpoint: str, port: int) -> dict[str, str]:
    """The production profile with explicit endpoints, one worker and no access log."""
    return {
        "STATS_ENV": "production",
        "STATS_HOST": "127.0.0.1",
        "STATS_PORT": str(port),
        "STATS_REDIS_URL": redis_url,
        "STATS_DYNAMODB_ENDPOINT": dynamodb_endpoint,
        "STATS_DYNAMODB_TABLE": TABLE,
        "AWS_REGION": REGION,
        # The local servers accept any credentials; production reads them from the environment.
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "STATS_ACCESS_LOG": "false",
        "STATS_WORKERS": "1",
        # Learners are named by X-User-Id, as a trusted gateway names them, or by the access
        # tokens of the bench's user pool (user_pool_env).
        "STATS_TRUST_USER_HEADER": "true",
        "STATS_CURSOR_SECRET": "bench-only-cursor-secret-0123456789abcdef",
        "STATS_SHUTDOWN_GRACE_SECONDS": "2",
    }


def user_pool_env(pool: Settings) -> dict[str, str]:
    """The variables that point the service at ``pool``, a user pool made by ``localmode.idp.create_user_pool``."""
    variables = {
        "STATS_COGNITO_USER_POOL_ID": pool.cognito_user_pool_id,
        "STATS_COGNITO_ENDPOINT": pool.cognito_endpoint,
        "STATS_AUTH_CLIENT_ID": pool.auth_client_id,
        "STATS_AUTH_ISSUER": pool.auth_issuer,
        "STATS_AUTH_JWKS_URL": pool.auth_jwks_url,
    }
    unset = [name for name, value in variables.items() if value is None]
    if unset:
        raise ValueError(f"the user pool's settings lack {', '.join(unset)}")
    return {name: value for name, value in variables.items() if value is not None}


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU time of a process, from /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuClock:
    """A process's CPU seconds since the clock was made; None where /proc cannot tell."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._start = cpu_seconds(pid)

    def seconds(self) -> float | None:
        now = cpu_seconds(self._pid)
        return None if now is None or self._start is None else now - self._start

    def us_per(self, requests: int) -> float | None:
        """CPU µs per request over ``requests`` served since the clock was made."""
        spent = self.seconds()
        return None if spent is None or not requests else round(spent / requests * 1e6, 1)


class Gunicorn:
    """gunicorn with the service's config file, serving ``app`` on the server core."""

    def __init__(self, app: str, env: dict[str, str], log_path: Path, cores: Cores) -> None:
        self.port = int(env["STATS_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "gunicorn", "--config", "python:service.gunicorn_conf", app]
        self._command = cores.on_server(command)
        self._env = {**os.environ, **env}
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command,
                env=self._env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads exist yet in the child
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self._process.returncode}; see {self._log_path}")
            if http_ok(f"{self.url}/health", timeout=0.5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not answer {self.url}/health within {timeout:.0f}s; see {self._log_path}")

    def worker_pid(self) -> int | None:
        """The worker's pid (the master only supervises), for the profiler."""
        assert self._process is not None
        children = Path(f"/proc/{self._process.pid}/task/{self._process.pid}/children")
        with contextlib.suppress(OSError, ValueError):
            return int(children.read_text().split()[0])
        return None

    def interrupt(self) -> None:
        """Quick shutdown (SIGINT): nothing is left to drain once the benchmark is done."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)

    def stop(self) -> None:
        self.interrupt()
        if self._process is None:
            return
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def stop_all(*servers: Gunicorn) -> None:
    for server in servers:
        server.interrupt()
    for server in servers:
        server.stop()


def create_table(env: dict[str, str]) -> None:
    """``python -m service.dynamodb.table create``, as a deployment runs it."""
    subprocess.run(
        [sys.executable, "-m", "service.dynamodb.table", "create"],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
