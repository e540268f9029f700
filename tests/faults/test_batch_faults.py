"""A batch whose items cannot finish: each answers 503 within the request deadline, and a retry is exact."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import Rig
from tests.integration.support import new_id

pytestmark = pytest.mark.slow


async def test_items_unfinished_by_the_deadline_answer_503_and_their_retry_counts_once(rig: Rig) -> None:
    client = await rig.start_app(
        rig.redis.url, rig.dynamodb_via_proxy, request_deadline_seconds=2.0, dynamodb_timeout_seconds=5.0
    )
    user, course = new_id(), new_id()
    sessions = [
        {"sessionId": new_id(), "totalModulesStudied": n, "averageScore": 50, "timeStudied": 1000} for n in range(3)
    ]
    path, headers = f"/courses/{course}/sessions/batch", {"X-User-Id": user}
    rig.dynamodb_proxy.blackhole()
    started = time.monotonic()
    async with client.post(path, json={"sessions": sessions}, headers=headers) as response:
        assert response.status == 200
        results = (await response.json())["results"]
    assert time.monotonic() - started < 2.0  # inside the request deadline, with the results
    assert [(r["index"], r["status"], r["error"]["code"]) for r in results] == [
        (n, 503, "service_unavailable") for n in range(3)
    ]
    assert [r["sessionId"] for r in results] == [s["sessionId"] for s in sessions]
    rig.dynamodb_proxy.passthrough()
    async with client.post(path, json={"sessions": sessions}, headers=headers) as response:
        assert {r["status"] for r in (await response.json())["results"]} <= {200, 201}
    async with client.get(f"/courses/{course}", headers=headers) as response:
        assert (await response.json())["sessionsCount"] == 3
    truth = await rig.backends.truth(user, course)
    assert (truth.sessions, truth.modules) == (3, 0 + 1 + 2)
