"""The domain's values: session stats and course aggregates, kept exactly.

Scores are stored in fixed point (hundredths of a percent point, "cents"), so
every sum is an integer and no aggregate drifts however many updates it sees.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

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
    # When the session was completed, ms since the epoch; None in a body that does not say.
    # Not part of equality: the aggregates never read it, and a re-post may omit it.
    completed_at_ms: int | None = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class StoredSession:
    """A session as DynamoDB holds it; ``version`` grows by one on every change.

    A deleted session is a tombstone: it keeps its version (so that no late or
    repeated write of an older version can bring it back) and contributes nothing.
    """

    stats: SessionStats
    version: int
    deleted: bool = False

    @property
    def entry_id(self) -> str:
        return self.stats.session_id

    @property
    def totals(self) -> CourseTotals:
        return CourseTotals() if self.deleted else CourseTotals.of((self.stats,))


@dataclasses.dataclass(frozen=True, slots=True)
class LearnerRow:
    """One learner's sums in one course, as the course's roster holds them.

    ``revision`` moves on by one with every store of the row
    (``service.domain.roster``), so a later row has a higher one.
    """

    user_id: str
    totals: CourseTotals
    revision: int

    @property
    def entry_id(self) -> str:
        return self.user_id

    @property
    def version(self) -> int:
        return self.revision


class Contribution(Protocol):
    """What one entry of a cached aggregate adds to it: a session's to a learner's
    aggregate, a learner's to a course's."""

    @property
    def entry_id(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def totals(self) -> CourseTotals: ...


@dataclasses.dataclass(frozen=True, slots=True)
class CourseTotals:
    """Integer sums over sessions: one learner's in one course, or every learner's in a course."""

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

    def __add__(self, other: CourseTotals) -> CourseTotals:
        return CourseTotals(
            self.sessions + other.sessions,
            self.modules + other.modules,
            self.weighted_score + other.weighted_score,
            self.score_sum + other.score_sum,
            self.time_ms + other.time_ms,
        )

    @property
    def average_score_cents(self) -> int:
        """Mean score weighted by modules studied; the plain mean when no module was."""
        if self.modules:
            return _rounded_ratio(self.weighted_score, self.modules)
        if self.sessions:
            return _rounded_ratio(self.score_sum, self.sessions)
        return 0


@dataclasses.dataclass(frozen=True, slots=True)
class CourseFigures:
    """A cached aggregate's sums and how many of its entries have a session:
    for a course, ``learners`` is the number of learners with at least one session."""

    totals: CourseTotals
    learners: int


@dataclasses.dataclass(frozen=True, slots=True)
class Course:
    """A registered course and who teaches it."""

    course_id: str
    title: str
    teachers: tuple[str, ...] = ()
