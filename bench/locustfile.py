"""Realistic traffic for any deployment of the service (``scripts/loadtest --host URL``).

Simulated learners, drawn from a pool, post sessions to courses they are enrolled
in (``--results-share`` of them with up to ``--results`` module results; a share
of them exact repeats of an earlier post, as client retries send), read their
course aggregates, breakdowns by module type, points and their courses' leaderboards
(all time and this week), read single sessions they
posted, list their sessions, sync batches after studying offline, and now and
then delete a session of their own (which must then be gone) and sometimes post
it again (which must create it anew). A few teachers (``--teacher-weight``) read
the course-wide figures, breakdowns and full rankings of the courses the learners
study, page through their learners, and list the registered courses.
Every answer is checked: a post must echo what was stored, a read must find what
was posted, a course's figures and learner pages must count its learners, a
leaderboard must list its places in order. The run
fails (exit code 1) when more than ``--max-fail-ratio`` of requests fail.

``--identity header`` (the default) names learners with ``X-User-Id``, as a trusted
gateway does. ``--identity accounts`` makes each simulated learner an account: it
registers, confirms (where the pool sends no code, as in local mode, confirming is
a no-op), logs in, sends its access token on every request and refreshes it
before it expires, and studies its own courses.

Teachers always need a token with the teacher or admin role (``/admin`` never takes
``X-User-Id``): ``--teacher-token`` if given; else, with ``--identity accounts``,
they log in as the admin of ``--admin-email`` / ``--admin-password`` (local mode's
admin by default); else (header mode) they mint tokens with the local identity
provider's key (``localmode.idp``, present where moto is installed), for the user
pool and app client of ``--idp-pool-id`` / ``--idp-client-id`` (by default
``STATS_COGNITO_USER_POOL_ID`` / ``STATS_AUTH_CLIENT_ID``, or read from the admin's
token after one login). Minted tokens carry the admin role, as the admin's do: an
admin reads every course, where a teacher may be held to the courses they teach.
Without that key the teacher class is skipped, with a message saying so. The
course-wide figures come from change capture, which lags the writes (locally a
fraction of a second, in production up to tens of seconds): teachers read only
courses whose first post is at least ``--figures-lag`` old.
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser

from bench.datagen import Write, WritePlanner, new_id, random_payload, seeded_id, token_claims

COURSE_ROUTE = "/courses/[courseId]"
LIST_ROUTE = "/courses/[courseId]/sessions"
BATCH_ROUTE = "/courses/[courseId]/sessions/batch"
# Sessions a learner's app syncs at once after studying offline.
BATCH_SIZE = 5
_BATCH_RNG = random.Random()
SESSION_ROUTE = "/courses/[courseId]/sessions/[sessionId]"
FIGURES_ROUTE = "/admin/courses/[courseId]"
LEARNERS_ROUTE = "/admin/courses/[courseId]/learners"
MODULES_ROUTE = "/courses/[courseId]/modules"
POINTS_ROUTE = "/points"
COURSE_MODULES_ROUTE = "/admin/courses/[courseId]/modules"
COURSES_ROUTE = "/admin/courses"
LEADERBOARD_ROUTE = "/courses/[courseId]/leaderboard"
STAFF_LEADERBOARD_ROUTE = "/admin/courses/[courseId]/leaderboard"
# A teacher's look through a course's learners: this many a page, at most this many pages.
LEARNER_PAGE = 50
LEARNER_PAGES = 10
# Sessions a learner keeps for deleting: posted by the delete task, never by the planner,
# so no other read expects them.
OWN_SESSIONS = 3
# How long a minted teacher token lasts (header mode); a new one is minted before it expires.
TEACHER_TOKEN_SECONDS = 3600
# Local mode's admin (localmode.idp), the default for teachers in --identity accounts mode.
LOCAL_ADMIN = ("admin@example.com", "LocalAdmin1!")
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
    group.add_argument("--delete-weight", type=int, default=1, help="relative frequency of deleting one's own session")
    group.add_argument("--repost-deleted-ratio", type=float, default=0.5, help="share of deleted sessions posted again")
    group.add_argument("--results-share", type=float, default=0.7, help="share of new sessions with module results")
    group.add_argument("--results", type=int, default=20, help="most module results a session carries (1-200)")
    group.add_argument(
        "--breakdown-weight", type=int, default=1, help="relative frequency of breakdown-by-module-type reads"
    )
    group.add_argument("--points-weight", type=int, default=1, help="relative frequency of reads of one's points")
    group.add_argument(
        "--leaderboard-weight", type=int, default=2, help="relative frequency of leaderboard reads (all time, week)"
    )
    group.add_argument(
        "--teacher-weight", type=int, default=1, help="teachers' weight against the learners' 20 (0: none)"
    )
    group.add_argument(
        "--figures-lag", type=float, default=5.0, help="seconds after a course's first post before teachers read it"
    )
    group.add_argument("--teacher-token", default="", help="a teacher's or admin's access token for the teachers")
    group.add_argument("--admin-email", default=LOCAL_ADMIN[0], help="the admin teachers log in as (accounts mode)")
    group.add_argument("--admin-password", default=LOCAL_ADMIN[1], help="that admin's password")
    group.add_argument(
        "--idp-pool-id",
        default=os.environ.get("STATS_COGNITO_USER_POOL_ID", ""),
        help="header mode: the user pool whose teacher tokens are minted with the local identity provider's key",
    )
    group.add_argument(
        "--idp-client-id",
        default=os.environ.get("STATS_AUTH_CLIENT_ID", ""),
        help="header mode: the app client those tokens name",
    )
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
        # When each course first had a session posted: teachers read those past the figures' lag.
        self.first_posted: dict[str, float] = {}
        # Header mode's teacher tokens: the pool and client they name, once known.
        self.idp_ids: tuple[str, str] | None = None
        self.teachers_off = ""  # why teachers cannot run, once that is known

    def planner(self, users: list[str], rng: random.Random, seed: int) -> WritePlanner:
        """Posts by ``users``, each to a sample of the courses."""
        per_user = min(self.options.courses_per_user, len(self.courses))
        pairs = [(user, course) for user in users for course in rng.sample(self.courses, per_user)]
        return WritePlanner(
            random.Random(seed),
            pairs,
            sessions_per_pair=self.options.sessions_per_course,
            repeat_ratio=self.options.repeat_ratio,
            results_share=self.options.results_share,
            max_results=self.options.results,
        )

    def next_write(self) -> Write:
        with self._lock:
            return self._planner.next()

    def course_posted(self, course: str) -> None:
        self.first_posted.setdefault(course, time.monotonic())

    def settled_course(self) -> str | None:
        """A course with a session posted at least ``--figures-lag`` ago, if any."""
        settled = time.monotonic() - self.options.figures_lag
        courses = [course for course, first in self.first_posted.items() if first <= settled]
        return random.choice(courses) if courses else None

    def teachers_stop(self, reason: str) -> None:
        if not self.teachers_off:
            self.teachers_off = reason
            print(f"teachers skipped: {reason}")


_traffic: Traffic | None = None


def traffic() -> Traffic:
    assert _traffic is not None, "set up by the init event"
    return _traffic


class Learner(HttpUser):
    weight = 20
    wait_time = between(0.5, 2.0)
    # With --identity accounts: this learner's own posts, token, and when to refresh it.
    planner: WritePlanner | None = None
    access_token = refresh_token = ""
    refresh_at = 0.0

    def on_start(self) -> None:
        self.own: list[Write] = []
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
            _refresh(self.client, self.refresh_token, self._hold)
        return {"Authorization": f"Bearer {self.access_token}"}

    def _next_write(self) -> Write:
        return traffic().next_write() if self.planner is None else self.planner.next()

    def _posts(self) -> deque[Write]:
        return traffic().posted if self.planner is None else self.posted

    def _post(self, write: Write) -> Any:
        """POST of ``write``, its answer to be checked (locust's ``catch_response``)."""
        return self.client.post(
            f"/courses/{write.course}",
            json=write.payload,
            headers=self._identity(write),
            name=COURSE_ROUTE,
            catch_response=True,
        )

    def post_session(self) -> None:
        write = self._next_write()
        with self._post(write) as response:
            if response.status_code not in (200, 201):
                response.failure(f"POST answered {response.status_code}: {response.text[:200]}")
                return
            stored = response.json()
            if stored.get("sessionId") != write.session or stored.get("timeStudied") != _time_of(write.payload):
                response.failure(f"POST stored something else: {stored}")
                return
            self._posts().append(write)
            traffic().course_posted(write.course)

    def _posted(self) -> Write | None:
        posted = self._posts()
        if not posted:
            self.post_session()
            return None
        return random.choice(posted)

    def read_course(self) -> None:
        self._read_own("", COURSE_ROUTE, "aggregate read", lambda stats: stats.get("sessionsCount", 0) >= 1)

    def read_modules(self) -> None:
        def sound(breakdown: dict[str, Any]) -> bool:
            # Each type studied once, in order (a later re-post may have dropped this session's results).
            items = breakdown.get("items")
            kinds = [item.get("moduleType") for item in items or []]
            return items is not None and kinds == sorted(set(kinds))

        self._read_own("/modules", MODULES_ROUTE, "breakdown", sound)

    def read_points(self) -> None:
        def sound(total: dict[str, Any]) -> bool:
            # The learner posted here: at least one course, and points are never negative.
            return bool(total.get("coursesCount", 0) >= 1 and total.get("points", -1) >= 0)

        self._read_own(None, POINTS_ROUTE, "points", sound)

    def read_leaderboard(self) -> None:
        period = random.choice(("all", "week"))
        self._read_own(f"/leaderboard?period={period}", LEADERBOARD_ROUTE, "leaderboard", ranked)

    def _read_own(self, view: str | None, name: str, what: str, sound: Callable[[dict[str, Any]], bool]) -> None:
        """A read of what the learner posted: ``view`` after ``/courses/{id}`` of a course they posted to,
        or (None) ``/points``; checked by ``sound``."""
        write = self._posted()
        if write is None:
            return
        path = "/points" if view is None else f"/courses/{write.course}{view}"
        with self.client.get(path, headers=self._identity(write), name=name, catch_response=True) as response:
            if response.status_code != 200 or not sound(response.json()):
                response.failure(f"{what} answered {response.status_code}: {response.text[:200]}")

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

    def delete_session(self) -> None:
        """Delete a session of one's own (then it must be gone), and sometimes post it again (created anew)."""
        own = self.own
        if len(own) < OWN_SESSIONS and (not own or random.random() < 0.5):
            write = self._posted()
            if write is not None:
                mine = Write(write.user, write.course, session := new_id(), random_payload(_BATCH_RNG, session))
                if self._post_own(mine):
                    own.append(mine)
            return
        write = own.pop(random.randrange(len(own)))
        if not self._delete(write):
            return
        if random.random() < traffic().options.repost_deleted_ratio and self._post_own(write):
            own.append(write)

    def _post_own(self, write: Write) -> bool:
        """Post a session that does not exist (new, or deleted): it must be created."""
        with self._post(write) as response:
            if response.status_code != 201 or response.json().get("sessionId") != write.session:
                response.failure(
                    f"POST of a new or deleted session answered {response.status_code}: {response.text[:200]}"
                )
                return False
        return True

    def _delete(self, write: Write) -> bool:
        path = f"/courses/{write.course}/sessions/{write.session}"
        with self.client.delete(
            path, headers=self._identity(write), name=SESSION_ROUTE, catch_response=True
        ) as response:
            if response.status_code != 204:
                response.failure(f"DELETE answered {response.status_code}: {response.text[:200]}")
                return False
        with self.client.get(path, headers=self._identity(write), name=SESSION_ROUTE, catch_response=True) as response:
            if response.status_code != 404:
                response.failure(f"a deleted session answered {response.status_code}: {response.text[:200]}")
                return False
            response.success()
        return True


def ranked(board: dict[str, Any]) -> bool:
    """A leaderboard's places in order: points down, competition ranks up from 1, no more than it counts."""
    items = board.get("items")
    if not isinstance(items, list):
        return False
    points = [item.get("points", -1) for item in items]
    ranks = [item.get("rank", 0) for item in items]
    return (
        points == sorted(points, reverse=True)
        and min(points, default=0) >= 0
        and ranks == sorted(ranks)
        and min(ranks, default=1) >= 1
        and board.get("learnersCount", -1) >= len(items)
    )


def _refresh(client: Any, refresh_token: str, hold: Callable[[dict[str, Any]], None]) -> None:
    """Renew an access token as an app does; ``hold`` keeps the new tokens."""
    with client.post("/auth/refresh", json={"refreshToken": refresh_token}, catch_response=True) as response:
        if response.status_code == 200:
            hold(response.json())
        else:
            response.failure(f"refresh answered {response.status_code}: {response.text[:200]}")


def _time_of(payload: dict[str, Any]) -> int:
    """The time a POST stores: the body's, or the total of its module results."""
    if "timeStudied" in payload:
        return int(payload["timeStudied"])
    return sum(int(result["timeStudied"]) for result in payload["modules"])


class Teacher(HttpUser):
    """A teacher: reads the figures of the courses the learners study, and pages through their learners."""

    weight = 1
    wait_time = between(1.0, 3.0)
    token = refresh_token = ""
    renew_at = 0.0

    def on_start(self) -> None:
        if traffic().teachers_off:
            raise StopUser
        options = traffic().options
        if options.teacher_token:
            self.token, self.renew_at = options.teacher_token, float("inf")
        elif options.identity == "accounts":
            self._log_in()
        else:
            self._mint()

    def _log_in(self) -> None:
        options = traffic().options
        credentials = {"email": options.admin_email, "password": options.admin_password}
        with self.client.post("/auth/login", json=credentials, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"the admin's login answered {response.status_code}: {response.text[:200]}")
                raise StopUser
            self._hold(response.json())

    def _hold(self, tokens: dict[str, Any]) -> None:
        self.token = tokens["accessToken"]
        self.refresh_token = tokens.get("refreshToken", self.refresh_token)
        self.renew_at = time.monotonic() + tokens["expiresIn"] - REFRESH_MARGIN_SECONDS

    def _idp_ids(self) -> tuple[str, str] | None:
        """The pool and client teacher tokens name: given, or read from the admin's token."""
        shared = traffic()
        options = shared.options
        if shared.idp_ids is None and options.idp_pool_id and options.idp_client_id:
            shared.idp_ids = options.idp_pool_id, options.idp_client_id
        if shared.idp_ids is None:
            self._log_in()
            claims = token_claims(self.token)  # only to learn which pool and client issued it
            shared.idp_ids = claims["iss"].rsplit("/", 1)[-1], claims["client_id"]
        return shared.idp_ids

    def _mint(self) -> None:
        """Header mode: a token of this teacher's own, signed with the local identity provider's key."""
        from localmode import idp  # noqa: PLC0415 - checked at start-up; absent where moto is not installed

        pool_id, client_id = self._idp_ids() or ("", "")
        self.refresh_token = ""  # minted tokens are renewed by minting again, not refreshed
        self.token = idp.access_token(
            pool_id, client_id, new_id(), lifetime=TEACHER_TOKEN_SECONDS, **{"cognito:groups": ["admin"]}
        )
        self.renew_at = time.monotonic() + TEACHER_TOKEN_SECONDS - REFRESH_MARGIN_SECONDS

    def _headers(self) -> dict[str, str]:
        if time.monotonic() >= self.renew_at:
            if self.refresh_token:
                self._refresh()
            else:
                self._mint()
        return {"Authorization": f"Bearer {self.token}"}

    def _refresh(self) -> None:
        _refresh(self.client, self.refresh_token, self._hold)

    @task(3)
    def read_figures(self) -> None:
        def sound(figures: dict[str, Any]) -> bool:
            learners, sessions = figures.get("learnersCount", 0), figures.get("sessionsCount", 0)
            return bool(1 <= learners <= sessions and 0 <= figures.get("averageScore", -1) <= 100)

        self._read_course_view("", FIGURES_ROUTE, "course figures", sound)

    @task(1)
    def read_breakdown(self) -> None:
        def sound(breakdown: dict[str, Any]) -> bool:
            items = breakdown.get("items")
            return items is not None and all(item.get("learnersCount", 0) >= 1 for item in items)

        self._read_course_view("/modules", COURSE_MODULES_ROUTE, "course breakdown", sound)

    def _read_course_view(self, view: str, name: str, what: str, sound: Callable[[dict[str, Any]], bool]) -> None:
        """A view of a course past the figures' lag (``view`` after ``/admin/courses/{id}``), checked by ``sound``."""
        course = traffic().settled_course()
        if course is None:
            return
        with self.client.get(
            f"/admin/courses/{course}{view}", headers=self._headers(), name=name, catch_response=True
        ) as response:
            if response.status_code != 200 or not sound(response.json()):
                response.failure(f"{what} answered {response.status_code}: {response.text[:200]}")

    @task(1)
    def read_leaderboard(self) -> None:
        self._read_course_view("/leaderboard?limit=50", STAFF_LEADERBOARD_ROUTE, "full ranking", ranked)

    @task(1)
    def list_courses(self) -> None:
        with self.client.get(
            f"{COURSES_ROUTE}?limit=50", headers=self._headers(), name=COURSES_ROUTE, catch_response=True
        ) as response:
            if response.status_code != 200 or not isinstance(response.json().get("items"), list):
                response.failure(f"course list answered {response.status_code}: {response.text[:200]}")

    @task(1)
    def page_learners(self) -> None:
        course = traffic().settled_course()
        if course is None:
            return
        seen: set[str] = set()
        cursor: str | None = ""
        for _ in range(LEARNER_PAGES):
            cursor = self._learner_page(course, cursor or "", seen)
            if not cursor:
                return

    def _learner_page(self, course: str, cursor: str, seen: set[str]) -> str | None:
        """One page, checked: learners with a session, none seen on an earlier page; the next cursor."""
        query = f"?limit={LEARNER_PAGE}" + (f"&cursor={cursor}" if cursor else "")
        with self.client.get(
            f"/admin/courses/{course}/learners{query}",
            headers=self._headers(),
            name=LEARNERS_ROUTE,
            catch_response=True,
        ) as response:
            page = response.json() if response.status_code == 200 else {}
            items = page.get("items", [])
            users = [item.get("userId") for item in items if item.get("sessionsCount", 0) >= 1]
            if len(users) != len(items) or seen & set(users) or (not cursor and not users):
                response.failure(f"learner page answered {response.status_code}: {response.text[:200]}")
                return None
        seen.update(users)
        next_cursor: str | None = page.get("nextCursor")
        return next_cursor


def _teachers_possible(options: argparse.Namespace) -> str:
    """Why the teacher class cannot run, or nothing."""
    if options.teacher_weight <= 0:
        return "--teacher-weight is 0"
    if options.teacher_token or options.identity == "accounts":
        return ""
    try:
        from localmode import idp  # noqa: F401, PLC0415 - only to know whether the key is there
    except Exception as exc:  # any failure to load it means the same
        return (
            f"header mode mints teacher tokens with the local identity provider's key, which is not available "
            f"here ({type(exc).__name__}: {exc}); pass --teacher-token, or use --identity accounts"
        )
    return ""


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
        (Learner.delete_session, options.delete_weight),
        (Learner.read_modules, options.breakdown_weight),
        (Learner.read_points, options.points_weight),
        (Learner.read_leaderboard, options.leaderboard_weight),
    )
    Learner.tasks = [function for function, weight in weighted for _ in range(weight)]
    Teacher.weight = max(options.teacher_weight, 0)
    reason = _teachers_possible(options)
    if reason:
        _traffic.teachers_stop(reason)
        environment.user_classes[:] = [user for user in environment.user_classes if user is not Teacher]


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
