"""Realistic traffic for any deployment of the service (``scripts/loadtest --host URL``).

Simulated learners, drawn from a pool, post sessions to courses they are enrolled
in (a share of them exact repeats of an earlier post, as client retries send),
read their course aggregates and read single sessions they posted. Every answer
is checked: a post must echo what was stored, a read must find what was posted.
The run fails (exit code 1) when more than ``--max-fail-ratio`` of requests fail.
"""

from __future__ import annotations

import argparse
import random
import threading
from collections import deque
from typing import Any

from locust import HttpUser, between, events
from locust.env import Environment

from bench.datagen import Write, WritePlanner, seeded_id

COURSE_ROUTE = "/courses/[courseId]"
SESSION_ROUTE = "/courses/[courseId]/sessions/[sessionId]"


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
    group.add_argument("--seed", type=int, default=1, help="seed for the learner and course pools")
    group.add_argument("--max-fail-ratio", type=float, default=0.01, help="exit 1 when more requests than this fail")


class Traffic:
    """What all simulated learners in this process share: the pools and what was posted."""

    def __init__(self, options: argparse.Namespace) -> None:
        rng = random.Random(options.seed)
        users = [seeded_id(rng) for _ in range(options.user_pool)]
        courses = [seeded_id(rng) for _ in range(options.course_pool)]
        per_user = min(options.courses_per_user, len(courses))
        pairs = [(user, course) for user in users for course in rng.sample(courses, per_user)]
        self._planner = WritePlanner(
            random.Random(options.seed + 1),
            pairs,
            sessions_per_pair=options.sessions_per_course,
            repeat_ratio=options.repeat_ratio,
        )
        self._lock = threading.Lock()
        # Bounded: reads pick among recent successful posts.
        self.posted: deque[Write] = deque(maxlen=10_000)

    def next_write(self) -> Write:
        with self._lock:
            return self._planner.next()


_traffic: Traffic | None = None


def traffic() -> Traffic:
    assert _traffic is not None, "set up by the init event"
    return _traffic


class Learner(HttpUser):
    wait_time = between(0.5, 2.0)

    def post_session(self) -> None:
        write = traffic().next_write()
        with self.client.post(
            f"/courses/{write.course}",
            json=write.payload,
            headers={"X-User-Id": write.user},
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
            traffic().posted.append(write)

    def _posted(self) -> Write | None:
        posted = traffic().posted
        if not posted:
            self.post_session()
            return None
        return random.choice(posted)

    def read_course(self) -> None:
        write = self._posted()
        if write is None:
            return
        with self.client.get(
            f"/courses/{write.course}", headers={"X-User-Id": write.user}, name=COURSE_ROUTE, catch_response=True
        ) as response:
            if response.status_code != 200 or response.json().get("sessionsCount", 0) < 1:
                response.failure(f"aggregate read answered {response.status_code}: {response.text[:200]}")

    def read_session(self) -> None:
        write = self._posted()
        if write is None:
            return
        with self.client.get(
            f"/courses/{write.course}/sessions/{write.session}",
            headers={"X-User-Id": write.user},
            name=SESSION_ROUTE,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"session read answered {response.status_code}: {response.text[:200]}")


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
