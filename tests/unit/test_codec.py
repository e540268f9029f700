"""The item format of module results: what is written is read back, from the table or from a
stream record as Lambda delivers it (binary values in base64 text)."""

from __future__ import annotations

import base64
import random

import pytest

from service.domain.model import ModuleResult, SessionStats, StoredSession, TypeTotals, type_sums_of, type_sums_text
from service.dynamodb import codec

ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


@pytest.mark.parametrize("seed", range(3))
def test_results_read_back_as_written_from_the_table_and_from_lambda(seed: int) -> None:
    rng = random.Random(seed)
    results = tuple(
        ModuleResult(
            rng.choice(["quiz", "case-study", "a" * 40]),
            rng.randint(0, 10_000),
            rng.randint(0, 86_400_000),
            rng.choice([None, ID, "00000000-0000-4000-8000-000000000000"]),
        )
        for _ in range(rng.randint(1, 200))
    )
    stored = StoredSession(SessionStats(ID, len(results), 100, 5, completed_at_ms=1, results=results), 3)
    item = codec.encode(ID, ID, stored)
    assert codec.decode(item).stats.results == results
    as_lambda = {**item, codec.RESULTS: {"B": base64.b64encode(item[codec.RESULTS]["B"]).decode()}}
    assert codec.decode(as_lambda).stats.results == results


def test_a_session_without_results_has_no_results_attribute() -> None:
    item = codec.encode(ID, ID, StoredSession(SessionStats(ID, 1, 100, 5), 1))
    assert codec.RESULTS not in item
    assert codec.decode(item).stats.results == ()


def test_by_type_sums_read_back_as_written() -> None:
    sums = (TypeTotals("case-study", 3, 10**12, 30_000), TypeTotals("quiz", 1, 0, 0))
    assert type_sums_of(type_sums_text(sums)) == sums
    assert type_sums_of("") == ()
