"""A smoke run of ``scripts/bench``: every scenario for about a second with tiny
sizes, into a temporary directory. It checks the machinery (servers, load
generators, baselines, rebuilds, report and plots), not the service's speed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = (
    "get_course",
    "get_course_token",
    "get_course_figures",
    "get_course_figures_teacher",
    "get_modules",
    "get_points",
    "get_course_modules",
    "get_leaderboard",
    "list_leaderboard",
    "get_session",
    "list_sessions",
    "list_learners",
    "list_courses",
    "post_new",
    "post_batch",
    "post_repost",
    "post_results",
    "post_results_200",
    "mix",
    "refresh",
    "get_leaderboard_100k",
)
RAW = (
    "redis_read",
    "figures_read",
    "redis_course_read",
    "teacher_figures_read",
    "dynamodb_get",
    "session_query",
    "roster_query",
    "post_new",
    "post_batch",
    "post_repost",
    "post_results",
    "post_results_200",
    "breakdown_read",
    "points_read",
    "course_breakdown_read",
    "catalog_page",
    "cognito_refresh",
    "board_read",
    "staff_board_read",
    "big_board_read",
    "points_apply",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    run = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def results(smoke: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((smoke / "results.json").read_text())
    return loaded


def assert_sane(measured: dict[str, Any]) -> None:
    assert measured["requests"] > 0
    assert measured["errors"] == 0
    assert measured["rps"] > 0
    assert 0 < measured["p50_ms"] <= measured["p90_ms"] <= measured["p99_ms"] <= measured["max_ms"]


def test_every_scenario_ran_at_saturation_and_at_half_rate(results: dict[str, Any]) -> None:
    rows = {"bare": results["baselines"]["bare"], **results["scenarios"]}
    assert set(rows) == {"bare", *SCENARIOS}
    for row in rows.values():
        assert_sane(row["saturation"])
        assert_sane(row["half_rate"])
        # Never under one request a second (bench.run), however slow the scenario saturated.
        half = max(row["saturation"]["rps"] / 2, 1.0)
        assert row["half_rate"]["offered_rps"] == pytest.approx(half, rel=0.01)


def test_baselines_and_ratios_are_measured(results: dict[str, Any]) -> None:
    raw = results["baselines"]["raw"]
    for name in RAW:
        assert_sane(raw[name])
    assert raw["mix"]["rps"] > 0
    for name in SCENARIOS:
        scenario = results["scenarios"][name]
        assert scenario["ratio_to_baseline"] > 0
        assert 0 < scenario["ratio_to_bare"] < 2


def test_a_batch_is_reported_per_item_too(results: dict[str, Any]) -> None:
    batch = results["scenarios"]["post_batch"]
    assert batch["items_per_request"] == 20
    per_item = batch["per_item"]
    assert per_item["items_per_s"] == pytest.approx(batch["saturation"]["rps"] * 20, rel=0.01)
    assert per_item["server_cpu_us"] == pytest.approx(batch["saturation"]["server_cpu_us"] / 20, rel=0.01)
    assert per_item["baseline_items_per_s"] > 0


def test_change_capture_is_measured_per_record(results: dict[str, Any]) -> None:
    capture = results["change_capture"]
    assert set(capture) == {"single", "sync"}
    single, sync = capture["single"], capture["sync"]
    assert single["records"] == 20
    assert single["records_per_batch"] == 1
    assert sync["records_per_batch"] == 20
    for shape in (single, sync):
        assert shape["cpu_us_per_record"] > 0
        assert shape["wall_ms_per_record"] > 0
    # Each lone record: at least its learner's course aggregate, their points and the course's in Redis,
    # and the roster row's recomputation (a Query of the learner's items and the row's write) in DynamoDB.
    assert single["dynamodb_calls_per_record"] >= 2
    assert single["redis_calls_per_record"] >= 3
    # One learner's sync: two Redis calls a record, and one roster recomputation for the whole batch.
    assert sync["dynamodb_calls_per_record"] == pytest.approx(single["dynamodb_calls_per_record"] / 20)
    assert sync["redis_calls_per_record"] == pytest.approx(2 + (single["redis_calls_per_record"] - 2) / 20)


def test_rebuilds_are_counted_and_one_stampede_rebuild(results: dict[str, Any]) -> None:
    points = results["rebuild"]["points"]
    assert [point["sessions"] for point in points] == [10, 100]
    for point in points:
        assert point["pages"] == point["expected_pages"] == 1
        assert 0 < point["rebuild_ms"] <= point["cold_read_ms"]
    stampede = results["stampede"]
    assert stampede["rebuilds"] == 1
    assert stampede["correct_replies"] == stampede["readers"] == 100


def test_the_large_board_is_rebuilt_in_bounded_round_trips(results: dict[str, Any]) -> None:
    board = results["large_board"]
    assert board["learners"] == 500
    # The claim, one chunk of 500 rows, the board's read: no call per learner.
    assert board["redis_calls"] == board["expected_redis_calls"] == 3
    assert board["dynamodb_queries"] == 16  # one page of each roster partition
    assert 0 < board["weekly_learners"] < board["learners"]
    assert 0 < board["weekly_board_bytes"] < board["board_bytes"]
    assert board["hash_bytes"] > 0


def test_the_cached_read_is_measured_with_traces_on_too(smoke: Path, results: dict[str, Any]) -> None:
    traced = results["tracing"]
    assert_sane(traced["saturation"])
    assert traced["saturation"]["server_cpu_us"] > 0
    # Every request answered reached the sink, as a server span and its Redis script's span (a cached read).
    assert traced["exported_share"] == pytest.approx(1, abs=0.02)
    assert traced["spans_per_request"] == pytest.approx(2, abs=0.01)
    off = results["scenarios"]["get_course"]["saturation"]
    assert traced["off_server_cpu_us"] == off["server_cpu_us"]
    assert traced["cpu_ratio_to_off"] == pytest.approx(
        traced["saturation"]["server_cpu_us"] / off["server_cpu_us"], rel=0.01
    )
    assert traced["ratio_to_off"] == pytest.approx(traced["saturation"]["rps"] / off["rps"], rel=0.01)
    report = (smoke / "report.md").read_text()
    assert "## Traces on" in report
    assert f"| traces on | {traced['saturation']['rps']:.0f} | {traced['saturation']['server_cpu_us']} |" in report


def test_report_and_plots_are_written(smoke: Path, results: dict[str, Any]) -> None:
    report = (smoke / "report.md").read_text()
    assert "## Targets" in report
    assert all(f"| {name}:" in report for name in SCENARIOS)
    assert "## Batches, per item" in report
    assert "## Change capture, per stream record" in report
    assert "## A course of 500 learners: its leaderboard" in report
    assert len(results["targets"]) == 12
    cpu_targets = [t for t in results["targets"] if t["name"].endswith("server CPU µs per request")]
    assert [t["target"] for t in cpu_targets] == ["<= 500", "<= 500", "<= 400"]
    assert all("busy; bare at the same rate: " in t["value"] for t in cpu_targets)
    assert "server CPU µs per session" in report
    assert "## DynamoDB client, CPU per call" in report
    for client in ("aioboto3", "wire"):
        assert all(results["clients"][client][call] > 0 for call in ("UpdateItem", "GetItem", "Query_per_session"))
    assert all(point["rebuild_cpu_ms"] >= 0 for point in results["rebuild"]["points"])
    # The routes with CPU targets, once more against moto's server.
    assert "## Against moto" in report
    assert set(results["against_moto"]) == {"post_new", "post_repost", "get_session"}
    for row in results["against_moto"].values():
        assert row["rps"] > 0
        assert row["errors"] == 0
        assert row["server_cpu_us"] > 0
    for plot in ("latency.png", "throughput.png", "rebuild.png"):
        data = (smoke / plot).read_bytes()
        assert data.startswith(b"\x89PNG"), plot
        assert len(data) > 10_000, plot
