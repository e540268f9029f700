"""Traffic generators shared by the tests, the benchmark and the locust scenario.

Nothing here imports the service: the same generators drive any deployed stack.
"""

from __future__ import annotations

import base64
import datetime
import json
import random
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any


def token_claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified: checking its signature is the service's business, not the traffic's."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def new_id() -> str:
    return str(uuid.uuid4())


def seeded_id(rng: random.Random) -> str:
    """A UUID drawn from ``rng``, so a seed gives the same pools on every run."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def random_payload(rng: random.Random, session: str) -> dict[str, Any]:
    """A valid POST body, covering zero modules and 0-3 decimal places in the score."""
    return {
        "sessionId": session,
        "totalModulesStudied": rng.choice([0, rng.randint(1, 10_000)]),
        "averageScore": round(rng.uniform(0, 100), rng.choice([0, 1, 2, 3])),
        "timeStudied": rng.randint(0, 86_400_000),
    }


# Types of config/module_types.yaml that generated results name (this module does not read the service's files).
MODULE_TYPES = ("video", "reading", "quiz", "exercise", "lab", "project")


def random_results(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """``count`` module results of a session: 200 of them still fit in one day."""
    return [
        {
            "moduleType": rng.choice(MODULE_TYPES),
            "score": round(rng.uniform(0, 100), rng.choice([0, 1, 2])),
            "timeStudied": rng.randint(0, 400_000),
        }
        for _ in range(count)
    ]


def payload_with_results(rng: random.Random, session: str, count: int) -> dict[str, Any]:
    """A POST body with ``count`` module results; the summary follows from them."""
    return {"sessionId": session, "modules": random_results(rng, count)}


@dataclass(frozen=True)
class Write:
    user: str
    course: str
    session: str
    payload: dict[str, Any]


class WritePlanner:
    """Session posts over (user, course) pairs: new values for a few sessions per pair,
    and a share of exact repeats of an earlier request, as a client retry sends.
    ``results_share`` of the new values carry 1 to ``max_results`` module results."""

    def __init__(
        self,
        rng: random.Random,
        pairs: list[tuple[str, str]],
        *,
        sessions_per_pair: int = 6,
        repeat_ratio: float = 0.2,
        history: int = 10_000,
        results_share: float = 0.0,
        max_results: int = 20,
        weeks_back: int = 0,
    ) -> None:
        self._rng = rng
        self._results_share = results_share
        self._weeks_back = weeks_back
        self._max_results = max_results
        self._pairs = pairs
        self._sessions = {pair: [new_id() for _ in range(sessions_per_pair)] for pair in pairs}
        self._repeat_ratio = repeat_ratio
        # Bounded so that a long load test does not grow without limit.
        self._history: deque[Write] = deque(maxlen=history)

    def next(self) -> Write:
        rng = self._rng
        if self._history and rng.random() < self._repeat_ratio:
            write = rng.choice(self._history)
        else:
            user, course = rng.choice(self._pairs)
            session = rng.choice(self._sessions[user, course])
            write = Write(user, course, session, self._payload(session))
        self._history.append(write)
        return write

    def _payload(self, session: str) -> dict[str, Any]:
        rng = self._rng
        # Drawn only with a share, so that the seeds of runs without results plan what they always did.
        if self._results_share and rng.random() < self._results_share:
            payload = payload_with_results(rng, session, rng.randint(1, self._max_results))
        else:
            payload = random_payload(rng, session)
        if self._weeks_back:
            ago = datetime.timedelta(days=rng.uniform(0, 7 * self._weeks_back))
            payload["completedAt"] = (datetime.datetime.now(datetime.UTC) - ago).isoformat()
        return payload


def plan_writes(
    rng: random.Random, pairs: list[tuple[str, str]], count: int, *, results_share: float = 0.0, weeks_back: int = 0
) -> list[Write]:
    """``weeks_back``: new values are completed at a random time of the last that many weeks."""
    planner = WritePlanner(rng, pairs, results_share=results_share, weeks_back=weeks_back)
    return [planner.next() for _ in range(count)]
