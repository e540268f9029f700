"""Points (SPEC §8): what a session earns, by the points table in force when it is written.

A module result earns its type's points times its score over 100, rounded half up;
a session without results earns ``session_points`` times its modules times its
average score over 100, rounded the same way. The use case that records a session
sets its points before storing it, so the stored session keeps them: a later
change of the table reaches sessions written after it, never history.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from service.domain.model import SCORE_SCALE, SessionStats, rounded_mean

# Scores are kept in hundredths, and "over 100" is the percentage: points x cents / 10 000.
_PER = 100 * SCORE_SCALE


@dataclasses.dataclass(frozen=True, slots=True)
class PointsTable:
    by_type: Mapping[str, int]
    session_points: int

    def earned(self, stats: SessionStats) -> int:
        if not stats.results:
            return rounded_mean(self.session_points * stats.modules * stats.score_cents, _PER)
        # A type missing from the table (the catalogue never drops one) would earn nothing rather than fail a write.
        return sum(
            rounded_mean(self.by_type.get(result.module_type, 0) * result.score_cents, _PER) for result in stats.results
        )

    def scored(self, stats: SessionStats) -> SessionStats:
        """The session with the points it earns."""
        return dataclasses.replace(stats, points=self.earned(stats))
