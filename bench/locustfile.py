"""Realistic traffic for any deployment of the service (``scripts/loadtest --host URL``).

Simulated learners, drawn from a pool, post sessions to courses they are enrolled
in (a share of them exact repeats of an earlier post, as client retries send),
read their course aggregates and read single sessions they posted. Every answer
is checked: a post must echo what was stored, a read must find what was posted.
The run fails (exit code 1) when more than ``--max-fail-ratio`` of requests fail.

``--identity header`` (the default) names learners with ``X-User-Id``, as a trusted
gateway does. ``--identity accounts`` makes each simulated learner an account: it
registers, confirms (where the pool sends no code, as in local mode, confirming is
a no-op), logs in, sends its access token on every request and refreshes it
before it expires, and studies its own courses.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
import uuid
from collections import deque
from typing import Any

from locust import HttpUser, between, events
from locust.env import Environment
from locust.exception import StopUser

from bench.datagen import Write, WritePlanner, new_id, random_payload, seeded_id

COURSE_ROUTE = "/courses/[courseId]"
LIST_ROUTE = "/courses/[courseId]/sessions"
BATCH_ROUTE = "/courses/[courseId]/sessions/batch"
# Sessions a learner's app syncs at once after studying offline.
BATCH_SIZE = 5
_BATCH_RNG = random.Random()
SESSION_ROUTE = "/courses/[courseId]/sessions/[sessionId]"
PASSWORD = "Load-Test-Passw0rd!"  # noqa: S105 - every simulated learner's, meets the pool's policy
# Refresh this long before the access token expires.
REFRESH_MARGIN_SECONDS = 60


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]  # locust is untyped here
def _options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("learning stats traffic")
    group.add_argument("--user-pool", type=int, default=1000, help="distinct learners (X-User-Id values)")
    group.add_argument("--course-pool", type=int, default=50, help="distinct courses")
    group.add_argument("--courses-per-user", type=int, default=3, help="courses each learner studies")
    group.add_argument("--sessions-per-course", type=int, default=6, help="distinct sessions per learner and course")
    group.add_argument("--repeat-ratio", type=float, default=0.2, help="share of posts that repeat an earlier one")
    group.add_argument("--post-weight", type=int, default=2, help="relative frequency of session posts")
    group.add_argument("--course-read-weight", type=int, default=6, help="relative frequency of aggregate reads")
    group.add_argument("--session-read-weight", type=int, default=2, help="relative frequency of session reads")
    group.add_argument("--list-weight", type=int, default=1, help="relative frequency of session list pages")
    group.add_argument("--batch-weight", type=int, default=1, help="relative frequency of offline-sync batches")
    group.add_argument("--seed", type=int, default=1, help="seed for the learner and course pools")
    group.add_argument(
        "--identity", choices=("header", "accounts"), default="header", help="X-User-Id, or an account's token"
    )
    group.add_argument("--max-fail-ratio", type=float, default=0.01, help="exit 1 when more requests than this fail")


class Traffic:
    """What all simulated learners in this process share: the pools and what was posted."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        rng = random.Random(options.seed)
        users = [seeded_id(rng) for _ in range(options.user_pool)]
        self.courses = [seeded_id(rng) for _ in range(options.course_pool)]
        self._planner = self.planner(users, rng, options.seed + 1)
        self._lock = threading.Lock()
        # Bounded: reads pick among recent successful posts.
        self.posted: deque[Write] = deque(maxlen=10_000)

    def planner(self, users: list[str], rng: random.Random, seed: int) -> WritePlanner:
        """Posts by ``users``, each to a sample of the courses."""
        per_user = min(self.options.courses_per_user, len(self.courses))
        pairs = [(user, course) for user in users for course in rng.sample(self.courses, per_user)]
        return WritePlanner(
            random.Random(seed),
            pairs,
            sessions_per_pair=self.options.sessions_per_course,
            repeat_ratio=self.options.repeat_ratio,
        )

    def next_write(self) -> Write:
        with self._lock:
            return self._planner.next()


_traffic: Traffic | None = None


def traffic() -> Traffic:
    assert _traffic is not None, "set up by the init event"
    return _traffic


class Learner(HttpUser):
    wait_time = between(0.5, 2.0)
    # With --identity accounts: this learner's own posts, token, and when to refresh it.
    planner: WritePlanner | None = None
    access_token = refresh_token = ""
    refresh_at = 0.0

    def on_start(self) -> None:
        if traffic().options.identity == "accounts":
            self._become_an_account()

    def _become_an_account(self) -> None:
        email = f"load-{uuid.uuid4()}@example.com"
        credentials = {"email": email, "password": PASSWORD}
        with self.client.post("/auth/register", json=credentials, catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"register answered {response.status_code}: {response.text[:200]}")
                raise StopUser
            user_id = response.json()["userId"]
        # The code is what Cognito emails; where no code is sent the account is confirmed already.
        with self.client.post(
            "/auth/confirm", json={"email": email, "code": "000000"}, catch_response=True
        ) as response:
            if response.status_code in (204, 409):
                response.success()
        with self.client.post("/auth/login", json=credentials, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"login answered {response.status_code}: {response.text[:200]}")
                raise StopUser
            self._hold(response.json())
        seed = uuid.UUID(user_id).int
        self.planner = traffic().planner([user_id], random.Random(seed), seed + 1)
        self.posted: deque[Write] = deque(maxlen=1_000)

    def _hold(self, tokens: dict[str, Any]) -> None:
        self.access_token = tokens["accessToken"]
        self.refresh_token = tokens.get("refreshToken", self.refresh_token)
        self.refresh_at = time.monotonic() + tokens["expiresIn"] - REFRESH_MARGIN_SECONDS

    def _identity(self, write: Write) -> dict[str, str]:
        if self.planner is None:
            return {"X-User-Id": write.user}
        if time.monotonic() >= self.refresh_at:
            with self.client.post(
                "/auth/refresh", json={"refreshToken": self.refresh_token}, catch_response=True
            ) as response:
                if response.status_code == 200:
                    self._hold(response.json())
                else:
                    response.failure(f"refresh answered {response.status_code}: {response.text[:200]}")
        return {"Authorization": f"Bearer {self.access_token}"}

    def _next_write(self) -> Write:
        return traffic().next_write() if self.planner is None else self.planner.next()

    def _posts(self) -> deque[Write]:
        return traffic().posted if self.planner is None else self.posted

    def post_session(self) -> None:
        write = self._next_write()
        with self.client.post(
            f"/courses/{write.course}",
            json=write.payload,
            headers=self._identity(write),
            name=COURSE_ROUTE,
            catch_response=True,
        ) as response:
            if response.status_code not in (200, 201):
                response.failure(f"POST answered {response.status_code}: {response.text[:200]}")
                return
            stored = response.json()
            if stored.get("sessionId") != write.session or stored.get("timeStudied") != write.payload["timeStudied"]:
                response.failure(f"POST stored something else: {stored}")
                return
            self._posts().append(write)

    def _posted(self) -> Write | None:
        posted = self._posts()
        if not posted:
            self.post_session()
            return None
        return random.choice(posted)

    def read_course(self) -> None:
        write = self._posted()
        if write is None:
            return
        with self.client.get(
            f"/courses/{write.course}", headers=self._identity(write), name=COURSE_ROUTE, catch_response=True
        ) as response:
            if response.status_code != 200 or response.json().get("sessionsCount", 0) < 1:
                response.failure(f"aggregate read answered {response.status_code}: {response.text[:200]}")

    def read_session(self) -> None:
        write = self._posted()
        if write is None:
            return
        with self.client.get(
            f"/courses/{write.course}/sessions/{write.session}",
            headers=self._identity(write),
            name=SESSION_ROUTE,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"session read answered {response.status_code}: {response.text[:200]}")

    def post_batch(self) -> None:
        write = self._posted()
        if write is None:
            return
        sessions = [random_payload(_BATCH_RNG, new_id()) for _ in range(BATCH_SIZE)]
        with self.client.post(
            f"/courses/{write.course}/sessions/batch",
            json={"sessions": sessions},
            headers=self._identity(write),
            name=BATCH_ROUTE,
            catch_response=True,
        ) as response:
            statuses = [result.get("status") for result in response.json().get("results", [])] if response.ok else []
            if statuses != [201] * BATCH_SIZE:
                response.failure(f"batch answered {response.status_code}: {response.text[:200]}")

    def list_sessions(self) -> None:
        write = self._posted()
        if write is None:
            return
        with self.client.get(
            f"/courses/{write.course}/sessions?limit=20",
            headers=self._identity(write),
            name=LIST_ROUTE,
            catch_response=True,
        ) as response:
            if response.status_code != 200 or not response.json().get("items"):
                response.failure(f"session list answered {response.status_code}: {response.text[:200]}")


@events.init.add_listener  # type: ignore[untyped-decorator]
def _set_up(environment: Environment, **_: Any) -> None:
    global _traffic  # noqa: PLW0603 - one shared traffic model per process, built from the parsed options
    options = environment.parsed_options
    assert options is not None
    _traffic = Traffic(options)
    weighted = (
        (Learner.post_session, options.post_weight),
        (Learner.read_course, options.course_read_weight),
        (Learner.read_session, options.session_read_weight),
        (Learner.list_sessions, options.list_weight),
        (Learner.post_batch, options.batch_weight),
    )
    Learner.tasks = [function for function, weight in weighted for _ in range(weight)]


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _summary(environment: Environment, **_: Any) -> None:
    total = environment.stats.total
    options = environment.parsed_options
    assert options is not None
    print(
        f"\nsummary: {total.num_requests} requests, {total.num_failures} failed ({total.fail_ratio:.2%}), "
        f"{total.total_rps:.1f} req/s, p50 {total.get_response_time_percentile(0.5):.0f} ms, "
        f"p95 {total.get_response_time_percentile(0.95):.0f} ms, p99 {total.get_response_time_percentile(0.99):.0f} ms"
    )
    if total.fail_ratio > options.max_fail_ratio:
        print(f"FAILED: more than {options.max_fail_ratio:.2%} of requests failed")
        environment.process_exit_code = 1
    else:
        environment.process_exit_code = 0
