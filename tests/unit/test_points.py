"""Points (SPEC §8): each module result its type's points times its score over 100, a session
without results STATS_SESSION_POINTS times its modules times its score over 100, halves up."""

from __future__ import annotations

import pytest

from service.domain.model import ModuleResult, SessionStats
from service.domain.points import PointsTable
from service.settings import ConfigError, load_settings

TABLE = PointsTable({"quiz": 20, "video": 10, "lab": 25}, session_points=10)


def session(modules: int, score_cents: int, *results: tuple[str, int]) -> SessionStats:
    kept = tuple(ModuleResult(kind, score, 1000) for kind, score in results)
    return SessionStats("s", modules, score_cents, 1000, results=kept)


@pytest.mark.parametrize(
    ("stats", "points"),
    [
        (session(3, 1235), 4),  # 10 x 3 x 12.35 / 100 = 3.705
        (session(1, 500), 1),  # 0.5: half up
        (session(0, 10_000), 0),
        (session(10_000, 10_000), 100_000),
        (session(1, 8050, ("quiz", 8050)), 16),  # 20 x 80.5 / 100 = 16.1
        (session(1, 8750, ("video", 8750)), 9),  # 8.75
        (session(1, 5000, ("lab", 5000)), 13),  # 12.5: half up
        (session(3, 0, ("quiz", 8050), ("video", 8750), ("lab", 5000)), 38),  # each rounded, then summed
        (session(1, 5000, ("retired-unknown", 5000)), 0),
    ],
)
def test_what_a_session_earns(stats: SessionStats, points: int) -> None:
    assert TABLE.earned(stats) == points
    assert TABLE.scored(stats).points == points


def test_session_points_are_a_setting_of_whole_non_negative_numbers() -> None:
    assert load_settings({"STATS_ENV": "test"}).session_points == 10
    assert load_settings({"STATS_ENV": "test", "STATS_SESSION_POINTS": "0"}).session_points == 0
    for bad in ("-1", "1.5", "ten"):
        with pytest.raises(ConfigError, match="STATS_SESSION_POINTS"):
            load_settings({"STATS_ENV": "test", "STATS_SESSION_POINTS": bad})
