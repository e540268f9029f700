"""The domain's values: session stats and course aggregates, kept exactly.

Scores are stored in fixed point (hundredths of a percent point, "cents"), so
every sum is an integer and no aggregate drifts however many updates it sees.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

SCORE_SCALE = 100


def score_to_cents(score: float | int) -> int:
    """``averageScore`` kept to 2 decimal places, rounding halves up."""
    return int((Decimal(repr(score)) * SCORE_SCALE).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def rounded_mean(total: int, count: int) -> int:
    """``total / count`` rounded half up, in integers; neither is ever negative, and ``count`` is not 0."""
    return (2 * total + count) // (2 * count)


class WriteOutcome(enum.Enum):
    CREATED = "created"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"
    # A newer write of the same session was already stored; it stands.
    SUPERSEDED = "superseded"


@dataclasses.dataclass(frozen=True, slots=True)
class ModuleResult:
    """One module's result within a session (SPEC §7)."""

    module_type: str
    score_cents: int
    time_ms: int
    module_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SessionStats:
    session_id: str
    modules: int
    score_cents: int
    time_ms: int
    # When the session was completed, ms since the epoch; None in a body that does not say.
    # Not part of equality: the aggregates never read it, and a re-post may omit it.
    completed_at_ms: int | None = dataclasses.field(default=None, compare=False)
    results: tuple[ModuleResult, ...] = ()
    # Earned when the session was written, by the points table of that time (service.domain.points).
    points: int = 0

    @classmethod
    def of_results(cls, session_id: str, results: tuple[ModuleResult, ...]) -> SessionStats:
        """A session whose summary follows from its module results (SPEC §7): their number, their
        mean score rounded half up, and their total time."""
        mean = rounded_mean(sum(result.score_cents for result in results), len(results))
        total = sum(result.time_ms for result in results)
        return cls(session_id, len(results), mean, total, results=results)


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

    @property
    def weeks(self) -> tuple[tuple[int, int], ...]:
        # Only a course's rows feed leaderboards.
        return ()


@dataclasses.dataclass(frozen=True, slots=True)
class CourseSession:
    """A session as it counts in its learner's points over every course: its sums, grouped by
    its course in place of module types, so that the cached sums count the learner's courses."""

    course_id: str
    stored: StoredSession

    @property
    def entry_id(self) -> str:
        return f"{self.course_id}#{self.stored.stats.session_id}"

    @property
    def version(self) -> int:
        return self.stored.version

    @property
    def totals(self) -> CourseTotals:
        totals = self.stored.totals
        return dataclasses.replace(totals, by_type=(TypeTotals(self.course_id, 1),) if totals.sessions else ())

    @property
    def weeks(self) -> tuple[tuple[int, int], ...]:
        return ()


# Weeks are numbered from the ISO week of 1970-01-01: week k starts on the Monday 7k - 3 days after the epoch.
DAY_MS = 86_400_000
# How many weeks before the current one a weekly leaderboard may name (SPEC §8).
PAST_WEEKS = 12


def week_of(epoch_ms: int) -> int:
    """The ISO week (in UTC) holding an instant."""
    return (epoch_ms // DAY_MS + 3) // 7


def weekly_points(sessions: Iterable[StoredSession], since_week: int) -> tuple[tuple[int, int], ...]:
    """The points earned each ISO week from ``since_week`` on, by the sessions completed in it (a week with
    a session and no points included), in week order."""
    points: Counter[int] = Counter()
    for stored in sessions:
        completed = stored.stats.completed_at_ms
        if not stored.deleted and completed is not None and week_of(completed) >= since_week:
            points[week_of(completed)] += stored.stats.points
    return tuple(sorted(points.items()))


def weeks_text(weeks: Sequence[tuple[int, int]]) -> str:
    """``"<week>=<points>,…"``, the compact form roster rows and cached course entries store ('' for none)."""
    return ",".join(f"{week}={points}" for week, points in weeks)


def weeks_of(text: str) -> tuple[tuple[int, int], ...]:
    """What :func:`weeks_text` wrote."""
    if not text:
        return ()
    return tuple((int(week), int(points)) for week, points in (part.split("=") for part in text.split(",")))


@dataclasses.dataclass(frozen=True, slots=True)
class LearnerRow:
    """One learner's sums in one course, as the course's roster holds them.

    ``revision`` moves on by one with every store of the row
    (``service.domain.roster``), so a later row has a higher one. ``weeks`` holds
    the learner's points in each ISO week a weekly leaderboard may still name
    when the row is stored (SPEC §8).
    """

    user_id: str
    totals: CourseTotals
    revision: int
    weeks: tuple[tuple[int, int], ...] = ()

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

    @property
    def weeks(self) -> tuple[tuple[int, int], ...]:
        """Points by ISO week, for a course's leaderboards; empty where no board is kept."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class TypeTotals:
    """Integer sums over the module results of one type."""

    module_type: str
    results: int = 0
    time_ms: int = 0
    score_sum: int = 0  # sum of score_cents

    def __add__(self, other: TypeTotals) -> TypeTotals:
        return TypeTotals(
            self.module_type,
            self.results + other.results,
            self.time_ms + other.time_ms,
            self.score_sum + other.score_sum,
        )

    @property
    def average_score_cents(self) -> int:
        return rounded_mean(self.score_sum, self.results) if self.results else 0


def type_sums_text(by_type: Sequence[TypeTotals]) -> str:
    """``"<type>:<results>:<time>:<scores>|…"``, the compact form that roster rows and cached
    entries store ('' for none); ``service.redis.cache``'s script reads the same."""
    return "|".join(f"{kind.module_type}:{kind.results}:{kind.time_ms}:{kind.score_sum}" for kind in by_type)


def type_sums_of(text: str) -> tuple[TypeTotals, ...]:
    """What :func:`type_sums_text` wrote."""
    if not text:
        return ()
    sums = []
    for part in text.split("|"):
        name, results, time_ms, scores = part.split(":")
        sums.append(TypeTotals(name, int(results), int(time_ms), int(scores)))
    return tuple(sums)


def _merged(left: tuple[TypeTotals, ...], right: tuple[TypeTotals, ...]) -> tuple[TypeTotals, ...]:
    if not right:
        return left
    if not left:
        return right
    by_type = {kind.module_type: kind for kind in left}
    for kind in right:
        mine = by_type.get(kind.module_type)
        by_type[kind.module_type] = kind if mine is None else mine + kind
    return tuple(by_type[name] for name in sorted(by_type))


@dataclasses.dataclass(frozen=True, slots=True)
class CourseTotals:
    """Integer sums over sessions: one learner's in one course, or every learner's in a course."""

    sessions: int = 0
    modules: int = 0
    weighted_score: int = 0  # sum of score_cents * modules
    score_sum: int = 0  # sum of score_cents
    time_ms: int = 0
    # The module results' sums by type, ordered by type id; types without a result are absent.
    by_type: tuple[TypeTotals, ...] = ()
    points: int = 0

    @classmethod
    def of(cls, sessions: Iterable[SessionStats]) -> CourseTotals:
        totals = [0, 0, 0, 0, 0, 0]
        by_type: tuple[TypeTotals, ...] = ()
        for stats in sessions:
            totals[0] += 1
            totals[1] += stats.modules
            totals[2] += stats.score_cents * stats.modules
            totals[3] += stats.score_cents
            totals[4] += stats.time_ms
            totals[5] += stats.points
            if stats.results:
                by_type = _merged(by_type, _type_totals(stats.results))
        return cls(totals[0], totals[1], totals[2], totals[3], totals[4], by_type, totals[5])

    def __add__(self, other: CourseTotals) -> CourseTotals:
        return CourseTotals(
            self.sessions + other.sessions,
            self.modules + other.modules,
            self.weighted_score + other.weighted_score,
            self.score_sum + other.score_sum,
            self.time_ms + other.time_ms,
            _merged(self.by_type, other.by_type),
            self.points + other.points,
        )

    @property
    def average_score_cents(self) -> int:
        """Mean score weighted by modules studied; the plain mean when no module was."""
        if self.modules:
            return rounded_mean(self.weighted_score, self.modules)
        if self.sessions:
            return rounded_mean(self.score_sum, self.sessions)
        return 0


def _type_totals(results: Sequence[ModuleResult]) -> tuple[TypeTotals, ...]:
    sums: dict[str, list[int]] = {}
    for result in results:
        kind = sums.setdefault(result.module_type, [0, 0, 0])
        kind[0] += 1
        kind[1] += result.time_ms
        kind[2] += result.score_cents
    return tuple(TypeTotals(name, *sums[name]) for name in sorted(sums))


@dataclasses.dataclass(frozen=True, slots=True)
class CourseFigures:
    """A cached aggregate's sums and how many of its entries have a session:
    for a course, ``learners`` is the number of learners with at least one session.
    ``type_entries`` counts, by module type, the entries with a result of that type
    (a course's learners who studied it); like ``totals.by_type``, only where asked."""

    totals: CourseTotals
    learners: int
    type_entries: tuple[tuple[str, int], ...] = ()
    # Types with a result: in a learner's points over every course, whose "types" are courses, their courses.
    groups: int = 0

    @classmethod
    def of(cls, entries: Iterable[Contribution]) -> CourseFigures:
        """The figures a cached aggregate of these entries holds (``service.redis.cache``'s sums)."""
        totals, learners, by_type = CourseTotals(), 0, Counter[str]()
        for entry in entries:
            contribution = entry.totals
            totals += contribution
            learners += 1 if contribution.sessions else 0
            by_type.update(kind.module_type for kind in contribution.by_type if kind.results)
        groups = sum(1 for kind in totals.by_type if kind.results)
        return cls(totals, learners, tuple(sorted(by_type.items())), groups)


def _points_in(row: Contribution, week: int | None) -> int | None:
    """A learner's points all time (``week`` None) or in one ISO week; None if they have no session then."""
    if week is None:
        return row.totals.points if row.totals.sessions else None
    return dict(row.weeks).get(week)


@dataclasses.dataclass(frozen=True, slots=True)
class Standing:
    """A learner's place on a leaderboard: competition rank (equal points share one, the next skips)."""

    rank: int
    points: int
    user_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Board:
    """A window of a course's leaderboard: how many learners it ranks, their standings from some
    position on, and the caller's own (None when they are not on it)."""

    learners: int
    standings: tuple[Standing, ...]
    you: Standing | None = None

    @classmethod
    def of(cls, rows: Iterable[Contribution], week: int | None, offset: int, limit: int, me: str | None) -> Board:
        """The board ranked from a course's roster rows: all time (``week`` None) or that ISO week's.

        In the order Redis's sorted sets keep (``service.redis.cache``): points down, then user id."""
        ranked = sorted((-points, row.entry_id) for row in rows if (points := _points_in(row, week)) is not None)
        standings: list[Standing] = []
        mine = None
        rank = 0
        for index, (score, user_id) in enumerate(ranked):
            if index == 0 or score != ranked[index - 1][0]:
                rank = index + 1
            if offset <= index < offset + limit:
                standings.append(Standing(rank, -score, user_id))
            if user_id == me:
                mine = Standing(rank, -score, user_id)
        return cls(len(ranked), tuple(standings), mine)


@dataclasses.dataclass(frozen=True, slots=True)
class LearnerPoints:
    """A learner's points over every course, and how many courses they have a session in."""

    points: int
    courses: int


@dataclasses.dataclass(frozen=True, slots=True)
class Course:
    """A registered course and who teaches it."""

    course_id: str
    title: str
    teachers: tuple[str, ...] = ()
