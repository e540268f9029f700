"""The contract's short paths give exactly what marshmallow's own calls give."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
from marshmallow import Schema, ValidationError, fields

from service.domain.model import CourseTotals, ModuleResult, SessionStats
from service.http.contract import Dumper, _FlatReader
from service.http.schemas import COURSE_STATS, SESSION_STATS, CoursePath, UUIDString

UUID = "3FA85F64-5717-4562-B3FC-2C963F66AFA6"
IDS = [None, "0b9a4c55-5f0e-4a43-9d1e-1d8d7d2c3b4a"]


@pytest.mark.parametrize("seed", range(5))
def test_the_short_dump_equals_schema_dump(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        results = tuple(
            ModuleResult(rng.choice(["quiz", "video"]), rng.randint(0, 10_000), rng.randint(0, 10**6), rng.choice(IDS))
            for _ in range(rng.choice([0, 0, 1, 20]))
        )
        stats = SessionStats(
            UUID.lower(), rng.randint(0, 10_000), rng.randint(0, 10_000), rng.randint(0, 86_400_000), results=results
        )
        assert Dumper(SESSION_STATS).dump(stats) == SESSION_STATS.dump(stats)
        assert ("modules" in SESSION_STATS.dump(stats)) == bool(results)
        sessions, modules, weighted, score_sum, time_ms = (rng.randint(0, 10**12) for _ in range(5))
        totals = CourseTotals(sessions, modules, weighted, score_sum, time_ms)
        assert Dumper(COURSE_STATS).dump(totals) == COURSE_STATS.dump(totals)


def test_a_value_lacking_a_field_dumps_without_it_as_marshmallow_does() -> None:
    partial = SimpleNamespace(modules=1, average_score_cents=100, time_ms=5)
    assert Dumper(COURSE_STATS).dump(partial) == COURSE_STATS.dump(partial)
    assert "sessionsCount" not in Dumper(COURSE_STATS).dump(partial)


def test_a_mapping_or_an_unplanned_field_takes_schema_dump() -> None:
    class WithList(Schema):
        items = fields.List(fields.Integer())

    assert Dumper(WithList()).dump({"items": [1, 2]}) == {"items": [1, 2]}
    assert Dumper(SESSION_STATS).dump({"session_id": "x", "modules": 1, "score_cents": 250, "time_ms": 3}) == {
        "sessionId": "x",
        "totalModulesStudied": 1,
        "averageScore": 2.5,
        "timeStudied": 3,
    }


def read(schema: Schema, source: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    into: dict[str, Any] = {}
    errors: dict[str, str] = {}
    _FlatReader(schema).read(source, into, errors)
    return into, errors


@pytest.mark.parametrize("value", [UUID, UUID.lower(), "nope", "", f"{UUID}\n", "3fa85f64571745 62b3fc2c963f66afa6"])
def test_the_short_parse_equals_field_deserialize(value: str) -> None:
    field = CoursePath().fields["course_id"]
    try:
        expected: tuple[dict[str, Any], dict[str, str]] = ({"course_id": field.deserialize(value)}, {})
    except ValidationError as exc:
        expected = ({}, {"courseId": " ".join(exc.messages)})
    assert read(CoursePath(), {"courseId": value}) == expected


def test_a_missing_required_field_gets_its_required_message() -> None:
    class Required(Schema):
        thing = UUIDString(required=True, data_key="Thing", error_messages={"required": "Needed."})

    assert read(Required(), {}) == ({}, {"Thing": "Needed."})
