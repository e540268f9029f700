"""``bench.promql``: the PromQL subset of the dashboard's panels, against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from bench.promql import Evaluator, Scrape, Unsupported, Vector, labels

EXPOSITION = """\
# HELP requests HTTP requests answered
# TYPE requests counter
requests_total{route="/a",status="200"} 10.0
requests_total{route="/a",status="503"} 2.0
requests_total{route="/b",status="200"} 4.0
# HELP latency Time to answer
# TYPE latency histogram
latency_bucket{route="/a",le="0.1"} 10.0
latency_bucket{route="/a",le="0.5"} 30.0
latency_bucket{route="/a",le="+Inf"} 40.0
latency_count{route="/a"} 40.0
latency_sum{route="/a"} 8.0
# HELP circuit State
# TYPE circuit gauge
circuit 1.0
"""


def scrape(time: float, **series: dict[tuple[tuple[str, str], ...], float]) -> Scrape:
    return Scrape(time, dict(series))


def vector(value: object) -> Vector:
    assert isinstance(value, dict)
    return value


def test_a_scrape_holds_every_sample_by_name_then_labels() -> None:
    parsed = Scrape.parse(3.0, EXPOSITION)

    assert parsed.time == 3.0
    assert parsed.samples["requests_total"][labels(route="/a", status="503")] == 2.0
    assert parsed.samples["latency_bucket"][labels(route="/a", le="+Inf")] == 40.0
    assert parsed.samples["circuit"] == {(): 1.0}


def test_selectors_match_labels_and_a_missing_label_as_empty() -> None:
    evaluator = Evaluator([Scrape.parse(0.0, EXPOSITION)])

    assert vector(evaluator.at('requests_total{status=~"5.."}', 0)) == {labels(route="/a", status="503"): 2.0}
    assert set(vector(evaluator.at('requests_total{route!="/a"}', 0))) == {labels(route="/b", status="200")}
    assert vector(evaluator.at('circuit{job=~".*"}', 0)) == {(): 1.0}
    assert vector(evaluator.at('circuit{job="api"}', 0)) == {}
    assert vector(evaluator.at("absent_metric", 0)) == {}


def test_rate_is_the_increase_over_the_time_between_the_windows_first_and_last_scrapes() -> None:
    key = labels(route="/a")
    scrapes = [scrape(t, c={key: v}) for t, v in ((0.0, 0.0), (1.0, 10.0), (2.0, 30.0), (4.0, 34.0))]
    evaluator = Evaluator(scrapes)

    assert vector(evaluator.at("rate(c[10s])", 2)) == {key: 15.0}  # 30 over 2 s
    assert vector(evaluator.at("rate(c[1500ms])", 2)) == {key: 20.0}  # only t=1 and t=2 are inside
    assert vector(evaluator.at("rate(c[10s])", 3)) == {key: 8.5}  # 34 over 4 s
    assert vector(evaluator.at("rate(c[10s])", 0)) == {}  # one sample is no rate


def test_rate_counts_a_counter_reset_as_a_restart_from_zero() -> None:
    scrapes = [scrape(t, c={(): v}) for t, v in ((0.0, 0.0), (1.0, 10.0), (2.0, 4.0))]

    # 10 before the restart and 4 after, over 2 s.
    assert vector(Evaluator(scrapes).at("rate(c[5s])", 2)) == {(): 7.0}


def test_aggregations_group_by_and_without_labels() -> None:
    evaluator = Evaluator([Scrape.parse(0.0, EXPOSITION)])

    assert vector(evaluator.at("sum by (route) (requests_total)", 0)) == {
        labels(route="/a"): 12.0,
        labels(route="/b"): 4.0,
    }
    assert vector(evaluator.at("sum without (route) (requests_total)", 0)) == {
        labels(status="200"): 14.0,
        labels(status="503"): 2.0,
    }
    assert vector(evaluator.at("max(requests_total)", 0)) == {(): 10.0}
    assert vector(evaluator.at("min(requests_total)", 0)) == {(): 2.0}
    assert vector(evaluator.at("avg(requests_total)", 0)) == {(): pytest.approx(16 / 3)}
    assert vector(evaluator.at("count(requests_total)", 0)) == {(): 3.0}


@pytest.mark.parametrize(
    ("quantile", "expected"),
    [
        (0.5, 0.3),  # rank 20 in (0.1, 0.5]: 10 below it, 20 inside: 0.1 + 0.4 * 10 / 20
        (0.1, 0.04),  # rank 4 in the first bucket, from 0: 0.1 * 4 / 10
        (0.25, 0.1),  # rank 10 is the first bucket's last observation
        (0.9, 0.5),  # rank 36 is in +Inf: the highest finite bound
    ],
)
def test_histogram_quantile_interpolates_within_the_bucket_that_holds_the_rank(
    quantile: float, expected: float
) -> None:
    evaluator = Evaluator([Scrape.parse(0.0, EXPOSITION)])

    result = vector(evaluator.at(f"histogram_quantile({quantile}, latency_bucket)", 0))

    assert result == {labels(route="/a"): pytest.approx(expected)}


def test_histogram_quantile_of_rates_by_route() -> None:
    buckets = {"0.1": (0.0, 10.0), "0.5": (0.0, 30.0), "+Inf": (0.0, 40.0)}
    scrapes = [
        scrape(
            float(t), h={labels(route="/a", method=m, le=le): counts[t] for le, counts in buckets.items() for m in "GP"}
        )
        for t in (0, 1)
    ]

    result = Evaluator(scrapes).at("histogram_quantile(0.5, sum by (route, le) (rate(h[5s])))", 1)

    assert vector(result) == {labels(route="/a"): pytest.approx(0.3)}


def test_histogram_quantile_of_an_empty_histogram_is_no_value() -> None:
    empty = {labels(le="0.1"): 0.0, labels(le="+Inf"): 0.0}
    evaluator = Evaluator([scrape(0.0, h=empty)])

    assert math.isnan(vector(evaluator.at("histogram_quantile(0.5, h)", 0))[()])
    assert Evaluator([scrape(0.0, h=empty), scrape(1.0, h=empty)]).series("histogram_quantile(0.5, h)") == {}


def test_the_hit_ratio_divides_matching_aggregates() -> None:
    scrapes = [scrape(0.0, hits={(): 0.0}, misses={(): 0.0}), scrape(2.0, hits={(): 30.0}, misses={(): 10.0})]
    expr = "sum(rate(hits[5s])) / (sum(rate(hits[5s])) + sum(rate(misses[5s])))"

    # 15 hits/s over 15 + 5 reads/s.
    assert vector(Evaluator(scrapes).at(expr, 1)) == {(): 0.75}


def test_vector_matching_on_all_labels_or_on_some() -> None:
    a, b = labels(x="1", y="a"), labels(x="1", y="b")
    evaluator = Evaluator([scrape(0.0, p={a: 6.0, labels(x="2", y="a"): 1.0}, q={b: 3.0, a: 2.0})])

    assert vector(evaluator.at("p / q", 0)) == {a: 3.0}
    assert vector(evaluator.at("p - on (x) q{y='b'}", 0)) == {labels(x="1"): 3.0}
    assert vector(evaluator.at("p * ignoring (y) q{y='b'}", 0)) == {labels(x="1"): 18.0}
    assert vector(evaluator.at("p / 2 + 1", 0)) == {a: 4.0, labels(x="2", y="a"): 1.5}
    assert evaluator.at("10 / 4", 0) == 2.5


def test_division_by_zero_is_infinite_or_no_value_and_series_leave_no_value_out() -> None:
    scrapes = [
        scrape(0.0, n={(): 0.0}, d={(): 0.0}),
        scrape(1.0, n={(): 3.0}, d={(): 0.0}),
        scrape(2.0, n={(): 3.0}, d={(): 1.0}),
    ]
    evaluator = Evaluator(scrapes)

    assert math.isnan(vector(evaluator.at("n / d", 0))[()])
    assert vector(evaluator.at("n / d", 1)) == {(): math.inf}
    assert evaluator.series("n / d") == {(): [(1.0, math.inf), (2.0, 3.0)]}


@pytest.mark.parametrize(
    "expr", ["irate(c[5s])", "topk(1, c)", "c > 1", "c offset 1m", "-c", "quantile(0.5, c)", "p / on (x) group_left q"]
)
def test_what_the_panels_do_not_use_is_refused_by_name(expr: str) -> None:
    with pytest.raises(Unsupported):
        Evaluator([scrape(0.0, c={(): 1.0}, p={(): 1.0}, q={(): 1.0})]).at(expr, 0)
