"""The benchmark's request streams, one per scenario.

``bench/wrk/*.lua`` build the same streams inside wrk (saturation runs); these
build them for the fixed-rate generator. Both read the data files written by
:meth:`Dataset.write`, and both derive a post's values from a counter with
:func:`post_values`' formula, so the two tools send the same kind of traffic.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.datagen import MODULE_TYPES, seeded_id
from localmode import idp

# Every tenth request of the mixed scenario is a write.
MIX_WRITE_EVERY = 10
# Sessions per batch request: what a learner's app syncs after studying offline.
BATCH_SESSIONS = 20
# Items per page of the list scenarios (the routes' default).
PAGE_LIMIT = 50
# Module results of a session as the platform posts it most often, and at most (SPEC §7).
TYPICAL_RESULTS, MOST_RESULTS = 20, 200
# The roles of the token the admin views are read with (they need teacher or admin): an admin
# reads every course, where a teacher may be held to the courses they teach.
ADMIN_GROUPS = ["admin"]
# A teacher of every course: the same views, through the check that they teach it.
TEACHER_GROUPS = ["teacher"]


@dataclass(frozen=True)
class UserPool:
    """The bench's user pool: the ids its tokens name, and a refresh token of each learner registered in it."""

    pool_id: str
    client_id: str
    refresh_tokens: list[str]


@dataclass(frozen=True)
class Dataset:
    """Users' sessions posted before the scenarios run: ``pairs`` have cached aggregates,
    and each pair's user an access token of the pool (``tokens``, one per user). The pairs'
    users are each one course's learners, ``learners_per_course`` to a course (``courses``),
    so that the course-wide views have classes to show; ``admin_token`` is a token with
    the admin role, for them, and ``teacher_token`` one of ``teacher_id``, who teaches every
    course. The pool's learners (``refresh_tokens``) are other users: Cognito names its users itself."""

    pairs: list[tuple[str, str]]
    sessions: list[tuple[str, str, str]]
    tokens: dict[str, str]
    refresh_tokens: list[str]
    courses: list[str]
    admin_token: str
    teacher_id: str
    teacher_token: str
    # (learner, course) of the large course whose leaderboard one scenario reads (bench.boards).
    board: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def generate(
        cls, seed: int, pairs: int, sessions_per_pair: int, pool: UserPool, learners_per_course: int
    ) -> Dataset:
        rng = random.Random(seed)
        courses = [seeded_id(rng) for _ in range(max(1, pairs // learners_per_course))]
        pair_ids = [(seeded_id(rng), courses[n % len(courses)]) for n in range(pairs)]
        sessions = [(user, course, seeded_id(rng)) for user, course in pair_ids for _ in range(sessions_per_pair)]
        # The pairs' users need not exist in the pool: the service checks only a token's signature and claims.
        tokens = {user: idp.access_token(pool.pool_id, pool.client_id, user) for user, _ in pair_ids}
        admin = idp.access_token(
            pool.pool_id, pool.client_id, seeded_id(rng), lifetime=24 * 3600, **{"cognito:groups": ADMIN_GROUPS}
        )
        teacher = seeded_id(rng)
        taught = idp.access_token(
            pool.pool_id, pool.client_id, teacher, lifetime=24 * 3600, **{"cognito:groups": TEACHER_GROUPS}
        )
        return cls(pair_ids, sessions, tokens, pool.refresh_tokens, courses, admin, teacher, taught)

    def write(self, directory: Path) -> dict[str, Path]:
        """One row per line, fields separated by spaces, for the Lua scripts."""
        names = ("pairs", "sessions", "tokens", "refresh", "courses", "teaching", "board")
        files = {name: directory / f"{name}.txt" for name in names}
        files["pairs"].write_text("".join(f"{user} {course}\n" for user, course in self.pairs))
        files["sessions"].write_text("".join(f"{u} {c} {s}\n" for u, c, s in self.sessions))
        files["tokens"].write_text("".join(f"{u} {c} {self.tokens[u]}\n" for u, c in self.pairs))
        files["refresh"].write_text("".join(f"{token}\n" for token in self.refresh_tokens))
        files["courses"].write_text("".join(f"{course} {self.admin_token}\n" for course in self.courses))
        files["teaching"].write_text("".join(f"{course} {self.teacher_token}\n" for course in self.courses))
        files["board"].write_text("".join(f"{user} {course}\n" for user, course in self.board))
        return files


def post_values(counter: int) -> tuple[int, int, int]:
    """(modules, score in hundredths, time in ms) for the ``counter``-th post; as in common.lua."""
    return counter % 50, (counter % 100) * 100 + counter % 97, 60_000 + (counter % 1000) * 1000


def new_session_id(run_id: str, thread: int, counter: int) -> str:
    """Unique per run, thread and request; as in common.lua."""
    return f"{run_id}-{thread:04x}-4000-8000-{counter:012x}"


def get_request(path: str, user: str, token: str | None = None) -> bytes:
    """As a trusted gateway sends it (X-User-Id), or as a learner's app does (a bearer token)."""
    credentials = f"Authorization: Bearer {token}" if token else f"X-User-Id: {user}"
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{credentials}\r\n\r\n".encode()


def _json_post(path: str, body: bytes, headers: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def session_body(session: str, counter: int) -> str:
    """One session's JSON with the ``counter``-th post's values; as post_body() in common.lua."""
    modules, score, time_ms = post_values(counter)
    return (
        f'{{"sessionId":"{session}","totalModulesStudied":{modules},'
        f'"averageScore":{score // 100}.{score % 100:02d},"timeStudied":{time_ms}}}'
    )


def post_request(user: str, course: str, session: str, counter: int) -> bytes:
    return _json_post(f"/courses/{course}", session_body(session, counter).encode(), f"X-User-Id: {user}\r\n")


def result_values(counter: int, count: int) -> list[tuple[str, int, int]]:
    """(type, score in hundredths, time in ms) of each of ``count`` results of the ``counter``-th post;
    as results() in common.lua. 200 of them stay within a day."""
    values = []
    for index in range(count):
        k = counter + index
        values.append((MODULE_TYPES[k % len(MODULE_TYPES)], (k % 100) * 100 + k % 97, 1000 + (k % 400) * 1000))
    return values


def results_body(session: str, counter: int, count: int) -> str:
    """A session of ``count`` module results, its summary left to follow from them; as results_body() in common.lua."""
    results = ",".join(
        f'{{"moduleType":"{kind}","score":{score // 100}.{score % 100:02d},"timeStudied":{time_ms}}}'
        for kind, score, time_ms in result_values(counter, count)
    )
    return f'{{"sessionId":"{session}","modules":[{results}]}}'


def results_request(user: str, course: str, session: str, counter: int, count: int) -> bytes:
    body = results_body(session, counter, count).encode()
    return _json_post(f"/courses/{course}", body, f"X-User-Id: {user}\r\n")


def batch_counter(counter: int, item: int) -> int:
    """The counter of item ``item`` of the ``counter``-th batch: every item of every batch its own."""
    return counter * BATCH_SESSIONS + item


def batch_request(user: str, course: str, run_id: str, thread: int, counter: int) -> bytes:
    """An offline sync: ``BATCH_SESSIONS`` new sessions in one request; as batch() in common.lua."""
    items = [batch_counter(counter, item) for item in range(BATCH_SESSIONS)]
    sessions = ",".join(session_body(new_session_id(run_id, thread, n), n) for n in items)
    body = f'{{"sessions":[{sessions}]}}'.encode()
    return _json_post(f"/courses/{course}/sessions/batch", body, f"X-User-Id: {user}\r\n")


def refresh_request(token: str) -> bytes:
    """As a learner's app renews its access token: the refresh token is its only credential."""
    return _json_post("/auth/refresh", f'{{"refreshToken":"{token}"}}'.encode())


def repost_counter(counter: int, sessions: int) -> int:
    """Values for the ``counter``-th re-post: every session alternates a change and an exact repeat."""
    return counter // sessions // 2


def _pairs(data: Dataset) -> Iterator[tuple[int, str, str]]:
    for n, (user, course) in enumerate(itertools.cycle(data.pairs)):
        yield n, user, course


def _get_course(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    for _, user, course in _pairs(data):
        yield get_request(f"/courses/{course}", user)


def _get_course_token(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    for _, user, course in _pairs(data):
        yield get_request(f"/courses/{course}", user, data.tokens[user])


def _get_session(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    for user, course, session in itertools.cycle(data.sessions):
        yield get_request(f"/courses/{course}/sessions/{session}", user)


def _post_new(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    for n, user, course in _pairs(data):
        yield post_request(user, course, new_session_id(run_id, thread, n), n)


def _post_repost(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    for n, (user, course, session) in enumerate(itertools.cycle(data.sessions)):
        yield post_request(user, course, session, repost_counter(n, len(data.sessions)))


def _post_results(count: int) -> Callable[[Dataset, str, int], Iterator[bytes]]:
    def requests(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
        for n, user, course in _pairs(data):
            yield results_request(user, course, new_session_id(run_id, thread, n), n, count)

    return requests


def _get_points(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    for _, user, _ in _pairs(data):
        yield get_request("/points", user)


def _get_modules(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    for _, user, course in _pairs(data):
        yield get_request(f"/courses/{course}/modules", user)


def _mix(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    for n, user, course in _pairs(data):
        if n % MIX_WRITE_EVERY == 0:
            yield post_request(user, course, new_session_id(run_id, thread, n), n)
        else:
            yield get_request(f"/courses/{course}", user)


def _refresh(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    for token in itertools.cycle(data.refresh_tokens):
        yield refresh_request(token)


def _list_sessions(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    for _, user, course in _pairs(data):
        yield get_request(f"/courses/{course}/sessions?limit={PAGE_LIMIT}", user)


def _post_batch(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    for n, user, course in _pairs(data):
        yield batch_request(user, course, run_id, thread, n)


def _per_course(path: str, *, teacher: bool = False) -> Callable[[Dataset, str, int], Iterator[bytes]]:
    """Each course in turn at ``path`` (``{course}`` in it), with the admin's token or the courses' teacher's."""

    def requests(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
        token = data.teacher_token if teacher else data.admin_token
        for course in itertools.cycle(data.courses):
            yield get_request(path.format(course=course), "", token)

    return requests


def _leaderboard(*, large: bool) -> Callable[[Dataset, str, int], Iterator[bytes]]:
    """Each learner's read of their course's leaderboard, with their place: the pairs' courses, or the large one."""

    def requests(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
        for user, course in itertools.cycle(data.board if large else data.pairs):
            yield get_request(f"/courses/{course}/leaderboard", user)

    return requests


def _list_courses(data: Dataset, run_id: str, thread: int) -> Iterator[bytes]:
    while True:
        yield get_request(f"/admin/courses?limit={PAGE_LIMIT}", "", data.admin_token)


STREAMS: dict[str, Callable[[Dataset, str, int], Iterator[bytes]]] = {
    "get_course": _get_course,
    "get_course_token": _get_course_token,
    "get_session": _get_session,
    "post_new": _post_new,
    "post_repost": _post_repost,
    "mix": _mix,
    "refresh": _refresh,
    "list_sessions": _list_sessions,
    "post_batch": _post_batch,
    "get_course_figures": _per_course("/admin/courses/{course}"),
    "get_course_figures_teacher": _per_course("/admin/courses/{course}", teacher=True),
    "list_learners": _per_course(f"/admin/courses/{{course}}/learners?limit={PAGE_LIMIT}"),
    "post_results": _post_results(TYPICAL_RESULTS),
    "post_results_200": _post_results(MOST_RESULTS),
    "get_modules": _get_modules,
    "get_points": _get_points,
    "get_course_modules": _per_course("/admin/courses/{course}/modules"),
    "list_courses": _list_courses,
    "get_leaderboard": _leaderboard(large=False),
    "get_leaderboard_100k": _leaderboard(large=True),
    "list_leaderboard": _per_course(f"/admin/courses/{{course}}/leaderboard?limit={PAGE_LIMIT}"),
}


def stream(script: str, data: Dataset, run_id: str, thread: int = 0xFFFF) -> Iterator[bytes]:
    """An endless request stream like ``bench/wrk/<script>.lua``'s, cycling through the data set."""
    return STREAMS[script](data, run_id, thread)
