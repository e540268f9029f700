"""Local mode: a real ``redis-server`` and moto's DynamoDB-compatible server,
started as child processes for a process that was given no endpoints.

The same process handles start the servers for the integration tests, which
also kill, pause and restart them to cause failures for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

from botocore.exceptions import BotoCoreError, ClientError

from localmode import idp
from service.accounts.cognito import create_admin
from service.domain.errors import ServiceError
from service.settings import Settings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux only: children must not outlive a service that was killed outright.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until(ready: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start within {timeout:.0f}s")


class ChildServer:
    """A server in a child process that can be stopped, killed, paused and restarted."""

    name = "server"

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads exist yet in the child
        )
        _wait_until(lambda: self.process is not None and self.process.poll() is None and self.is_ready(), self.name)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def pause(self) -> None:
        """Freeze the server: connections stay open and nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer(ChildServer):
    """``redis-server`` on a unix socket in a private directory, no persistence."""

    name = "redis-server"

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.socket_path = directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/run and scripts/test install it)")
        return [
            binary,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip

    def is_ready(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(0.5)
                client.connect(str(self.socket_path))
                client.sendall(b"PING\r\n")
                return client.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class DynamoDBEndpoint(ChildServer):
    """A DynamoDB-compatible HTTP server on a loopback port."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__()
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_ready(self) -> bool:
        request = urllib.request.Request(  # noqa: S310 - a fixed loopback http URL
            self.url, data=b"{}", headers={"X-Amz-Target": "DynamoDB_20120810.ListTables"}
        )
        try:
            with urllib.request.urlopen(request, timeout=0.5):  # noqa: S310
                return True
        except urllib.error.HTTPError:
            return True  # Any HTTP answer means the server is serving.
        except OSError:
            return False


class MotoServer(DynamoDBEndpoint):
    """moto's DynamoDB-compatible HTTP server (``localmode.dynamodb``)."""

    name = "moto server"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "localmode.dynamodb", "--port", str(self.port)]


_BANNER = """
==============================================================================
  LOCAL MODE: {what}
  Data lives in memory and is lost when this process stops. Not for production.
==============================================================================
"""

_ACCOUNTS = """  Accounts: moto's Cognito user pool {pool}; sign-ups are confirmed at once.
  Admin: {email} / {password}  (STATS_ADMIN_EMAIL / STATS_ADMIN_PASSWORD)
  Log in:
    curl -s http://{host}:{port}/auth/login -H 'Content-Type: application/json' \\
      -d '{{"email": "{email}", "password": "{password}"}}'
==============================================================================
"""


def _with_identity_provider(settings: Settings, endpoint: str) -> tuple[Settings, str]:
    """``settings`` with a new local user pool and its admin, and the banner's lines about them."""
    email, password = idp.admin_credentials()
    try:
        configured = asyncio.run(idp.create_user_pool(settings, endpoint))
        asyncio.run(create_admin(configured, email, password))
    except (ServiceError, BotoCoreError, ClientError) as exc:
        # Tokens and accounts are off; the trusted X-User-Id still works.
        log.warning("no local identity provider", extra={"endpoint": endpoint, "error": str(exc)})
        return settings, f"  No identity provider at {endpoint} ({exc}): tokens and accounts are off.\n"
    text = _ACCOUNTS.format(
        pool=configured.cognito_user_pool_id, email=email, password=password, host=settings.host, port=settings.port
    )
    return configured, text


@contextlib.contextmanager
def local_dependencies(settings: Settings) -> Iterator[Settings]:
    """Settings whose missing endpoints point at servers started for this process, with a user pool on moto's."""
    if not settings.is_local:
        yield settings
        return
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="learning-stats-")))
        redis_url, endpoint = settings.redis_url, settings.dynamodb_endpoint
        started: list[str] = []
        if not redis_url:
            redis_url = stack.enter_context(RedisServer(directory)).url
            started.append(f"redis-server at {redis_url}")
        if not endpoint:
            endpoint = stack.enter_context(MotoServer()).url
            started.append(f"moto DynamoDB at {endpoint}")
        resolved = dataclasses.replace(settings, redis_url=redis_url, dynamodb_endpoint=endpoint)
        accounts = ""
        if settings.auth_issuer is None:
            resolved, accounts = _with_identity_provider(resolved, settings.cognito_endpoint or endpoint)
        what = "; ".join(started) or "endpoints as configured"
        print(_BANNER.format(what=what) + accounts, file=sys.stderr, flush=True)
        yield resolved
