"""What operators and the orchestrator rely on during failures: /ready names the
failing dependency while /health stays up, and SIGTERM drains in-flight requests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from localmode.servers import free_port
from tests.faults.conftest import Rig
from tests.faults.support import until
from tests.integration.support import TABLE, Api, new_id

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GRACE_SECONDS = 5.0
# Each chunk to and from DynamoDB is held this long: a POST stays in flight about twice that.
DYNAMODB_DELAY_SECONDS = 0.75


async def ready_reports(api: Api, failing: set[str]) -> bool:
    """Whether /ready reports exactly ``failing``; /health must answer 200, fast, regardless."""
    started = time.monotonic()
    assert (await api.call("GET", "/health")).status == 200
    assert time.monotonic() - started < 0.5, "liveness must not wait on dependencies"
    reply = await api.call("GET", "/ready")
    if not failing:
        return reply.status == 200 and reply.json["status"] == "ready"
    if reply.status != 503:
        return False
    error = reply.json["error"]
    assert error["code"] == "not_ready"
    assert reply.headers["Retry-After"].isdigit()
    if set(error["fields"]) != failing:
        return False
    assert all(name in error["message"] for name in failing)
    return True


async def test_ready_names_the_failing_dependency_and_health_stays_up(rig: Rig) -> None:
    api = Api(await rig.start_app(rig.redis.url, rig.moto.url, dynamodb_timeout_seconds=0.5))
    assert await ready_reports(api, set())

    rig.redis.kill()
    await until(lambda: ready_reports(api, {"redis"}), within=3.0)
    await asyncio.to_thread(rig.redis.start)
    # The breaker closes after its next background probe.
    await until(lambda: ready_reports(api, set()), within=5.0)

    rig.moto.pause()
    try:
        await until(lambda: ready_reports(api, {"dynamodb"}), within=5.0)
    finally:
        rig.moto.resume()
    await until(lambda: ready_reports(api, set()), within=5.0)


async def test_sigterm_finishes_in_flight_request_and_exits_0(rig: Rig, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "STATS_ENV": "local",
        "STATS_PORT": str(port),
        "STATS_REDIS_URL": rig.redis.url,
        "STATS_DYNAMODB_ENDPOINT": rig.dynamodb_via_proxy,
        "STATS_DYNAMODB_TABLE": TABLE,
        "STATS_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        "STATS_ACCESS_LOG": "false",
        # The POST must be the only DynamoDB traffic: the proxy's byte count tells when it left.
        "STATS_CHANGE_CAPTURE": "false",
    }
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service", cwd=ROOT, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", timeout=timeout) as http:
            await until(lambda: _serving(http, process), within=60.0, interval=0.2)
            proxy = rig.dynamodb_proxy
            proxy.delay(DYNAMODB_DELAY_SECONDS)
            sent = proxy.bytes_from_clients
            post = asyncio.create_task(_post(http))

            async def post_reached_dynamodb() -> bool:
                return proxy.bytes_from_clients > sent

            await until(post_reached_dynamodb, within=5.0, interval=0.01)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()

            # The listener closes at once, while the POST is still waiting on DynamoDB.
            await until(lambda: _refuses(port), within=1.0, interval=0.05)
            assert not post.done()
            assert await post == 201
        code = await asyncio.wait_for(process.wait(), GRACE_SECONDS + 5)
        exited = time.monotonic() - signalled
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log_text = await asyncio.to_thread(log_path.read_text)
    print(f"sigterm: exited {exited:.2f}s after the signal with {code}")
    assert code == 0, log_text
    assert exited < GRACE_SECONDS, log_text


async def _serving(http: aiohttp.ClientSession, process: asyncio.subprocess.Process) -> bool:
    assert process.returncode is None, "the service exited during start-up; see its log"
    try:
        async with http.get("/health") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def _post(http: aiohttp.ClientSession) -> int:
    body = {"totalModulesStudied": 3, "averageScore": 80, "timeStudied": 1000}
    async with http.post(f"/courses/{new_id()}", json=body, headers={"X-User-Id": new_id()}) as response:
        await response.read()
        return response.status


async def _refuses(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the probe reached the backlog as the listener closed, which drops what it had queued.
        return True
    writer.close()
    await writer.wait_closed()
    return False
