"""The domain's values: session stats and course aggregates, kept exactly.

Scores are stored in fixed point (hundredths of a percent point, "cents"), so
every sum is an integer and no aggregate drifts however many updates it sees.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

SCORE_SCALE = 100


def score_to_cents(score: float | int) -> int:
    """``averageScore`` kept to 2 decimal places, rounding halves up."""
    return int((Decimal(repr(score)) * SCORE_SCALE).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _rounded_ratio(numerator: int, denominator: int) -> int:
    # Half-up rounding in integers; both operands are never negative.
    return (2 * numerator + denominator) // (2 * denominator)


class WriteOutcome(enum.Enum):
    CREATED = "created"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"
    # A newer write of the same session was already stored; it stands.
    SUPERSEDED = "superseded"


@dataclasses.dataclass(frozen=True, slots=True)
class SessionStats:
    session_id: str
    modules: int
    score_cents: int
    time_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class StoredSession:
    """A session as DynamoDB holds it; ``version`` grows by one on every change."""

    stats: SessionStats
    version: int


@dataclasses.dataclass(frozen=True, slots=True)
class CourseTotals:
    """Integer sums over one user's sessions in one course."""

    sessions: int = 0
    modules: int = 0
    weighted_score: int = 0  # sum of score_cents * modules
    score_sum: int = 0  # sum of score_cents
    time_ms: int = 0

    @classmethod
    def of(cls, sessions: Iterable[SessionStats]) -> CourseTotals:
        totals = [0, 0, 0, 0, 0]
        for stats in sessions:
            totals[0] += 1
            totals[1] += stats.modules
            totals[2] += stats.score_cents * stats.modules
            totals[3] += stats.score_cents
            totals[4] += stats.time_ms
        return cls(*totals)

    @property
    def average_score_cents(self) -> int:
        """Mean score weighted by modules studied; the plain mean when no module was."""
        if self.modules:
            return _rounded_ratio(self.weighted_score, self.modules)
        if self.sessions:
            return _rounded_ratio(self.score_sum, self.sessions)
        return 0
