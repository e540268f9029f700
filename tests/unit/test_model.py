"""Fixed-point scores and exact course aggregates."""

from __future__ import annotations

import dataclasses
import math
import random
from fractions import Fraction

import pytest

from service.domain.model import SCORE_SCALE, CourseTotals, SessionStats, score_to_cents
from service.http.schemas import COURSE_STATS, SESSION_STATS


def stats(modules: int, score_cents: int, time_ms: int = 0, session_id: str = "s") -> SessionStats:
    return SessionStats(session_id=session_id, modules=modules, score_cents=score_cents, time_ms=time_ms)


def half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def reference_average_cents(sessions: list[SessionStats]) -> int:
    """The contract's average, computed with rationals so no rounding can hide."""
    modules = sum(s.modules for s in sessions)
    if modules:
        return half_up(Fraction(sum(s.score_cents * s.modules for s in sessions), modules))
    if sessions:
        return half_up(Fraction(sum(s.score_cents for s in sessions), len(sessions)))
    return 0


@pytest.mark.parametrize(
    ("score", "cents"),
    [
        (12.345, 1235),
        (12.344, 1234),
        (99.995, 10000),
        # Binary floats just below the half: the decimal the client sent decides.
        (2.675, 268),
        (1.005, 101),
        (0.1 + 0.2, 30),
        (0.005, 1),
        (0.004, 0),
        (33.333333, 3333),
        (1e-7, 0),
        (0.0, 0),
        (-0.0, 0),
        (100.0, 10000),
        (0, 0),
        (7, 700),
        (100, 10000),
    ],
)
def test_score_to_cents_rounds_half_up_from_the_decimal_text(score: float, cents: int) -> None:
    result = score_to_cents(score)
    assert result == cents
    assert type(result) is int


def test_average_is_weighted_by_modules() -> None:
    totals = CourseTotals.of([stats(1, 10000), stats(3, 5000)])
    # The plain mean would be 7500.
    assert totals.average_score_cents == 6250


def test_sessions_without_modules_do_not_weigh_when_others_have_modules() -> None:
    assert CourseTotals.of([stats(0, 0), stats(2, 8000)]).average_score_cents == 8000


@pytest.mark.parametrize(
    ("sessions", "cents"),
    [
        ([stats(1, 1), stats(1, 2)], 2),  # 1.5 rounds up
        ([stats(1, 2), stats(1, 3)], 3),  # 2.5 rounds up, not to even
        ([stats(2, 0), stats(1, 1)], 0),  # 0.33 rounds down
        ([stats(1, 0), stats(2, 1)], 1),  # 0.67 rounds up
        ([stats(0, 5000), stats(0, 6001)], 5501),  # no modules: plain mean, 5500.5 rounds up
        ([stats(0, 1), stats(0, 1), stats(0, 0)], 1),  # plain mean 0.67
        ([stats(0, 7777)], 7777),
    ],
)
def test_average_rounds_half_up_to_two_decimals(sessions: list[SessionStats], cents: int) -> None:
    assert CourseTotals.of(sessions).average_score_cents == cents


def test_no_sessions_gives_zero_totals() -> None:
    totals = CourseTotals.of([])
    assert totals == CourseTotals()
    assert totals.average_score_cents == 0
    assert COURSE_STATS.dump(totals) == {
        "totalModulesStudied": 0,
        "averageScore": 0.0,
        "timeStudied": 0,
        "sessionsCount": 0,
        "points": 0,
    }


def test_totals_sum_every_field() -> None:
    totals = CourseTotals.of([stats(2, 5000, 1000), stats(3, 7000, 2500), stats(0, 100, 7)])
    assert totals == CourseTotals(sessions=3, modules=5, weighted_score=31000, score_sum=12100, time_ms=3507)


def test_course_totals_json_shape() -> None:
    # (1234 + 3 * 5000) / 4 = 4058.5 cents, rounded up.
    sessions = [dataclasses.replace(stats(1, 1234, 60_000), points=7), dataclasses.replace(stats(3, 5000, 1), points=2)]
    body = COURSE_STATS.dump(CourseTotals.of(sessions))
    assert body == {
        "totalModulesStudied": 4,
        "averageScore": 40.59,
        "timeStudied": 60_001,
        "sessionsCount": 2,
        "points": 9,
    }
    assert type(body["totalModulesStudied"]) is int
    assert type(body["timeStudied"]) is int
    assert type(body["averageScore"]) is float


def test_session_json_shape() -> None:
    stats = SessionStats(
        "3fa85f64-5717-4562-b3fc-2c963f66afa6", 12, 1235, 90_000, completed_at_ms=1_764_583_200_007, points=15
    )
    body = SESSION_STATS.dump(stats)
    assert body == {
        "sessionId": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "totalModulesStudied": 12,
        "averageScore": 12.35,
        "timeStudied": 90_000,
        "completedAt": "2025-12-01T10:00:00.007Z",
        "points": 15,
    }
    assert type(body["averageScore"]) is float


@pytest.mark.parametrize("seed", range(5))
def test_aggregates_stay_exact_over_many_sessions(seed: int) -> None:
    rng = random.Random(seed)
    sessions = [
        stats(
            rng.choice([0, rng.randint(0, 10_000)]),
            score_to_cents(round(rng.uniform(0, 100), rng.randint(0, 3))),
            rng.randint(0, 86_400_000),
            session_id=str(index),
        )
        for index in range(5_000)
    ]
    totals = CourseTotals.of(sessions)
    expected = reference_average_cents(sessions)
    assert totals.average_score_cents == expected
    assert COURSE_STATS.dump(totals)["averageScore"] == expected / SCORE_SCALE
    assert totals.time_ms == sum(s.time_ms for s in sessions)
    # Order must not matter, which a float accumulator would not guarantee.
    assert CourseTotals.of(reversed(sessions)) == totals


@pytest.mark.parametrize("seed", range(3))
def test_plain_mean_is_exact_when_no_module_was_studied(seed: int) -> None:
    rng = random.Random(seed)
    sessions = [stats(0, rng.randint(0, 10_000)) for _ in range(2_001)]
    assert CourseTotals.of(sessions).average_score_cents == reference_average_cents(sessions)
