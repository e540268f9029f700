"""The part of PromQL the dashboard's panels use, evaluated over scrapes of ``/metrics`` kept in memory.

Expressions are parsed by ``promql_parser`` (Prometheus's grammar); this module evaluates
number literals, instant and range selectors with label matchers, ``rate``,
``histogram_quantile``, the ``sum``/``max``/``min``/``avg``/``count`` aggregations with
``by``/``without``, and arithmetic with one-to-one vector matching. Anything else raises
:class:`Unsupported`, so a panel can never be drawn from a half-understood query.

``rate`` is the counter's increase (resets counted) between the first and last scrape in
the window, over the time between them. Prometheus also extrapolates to the window's edges;
for a steady rate the two agree, and the local render scrapes every second so the
difference is small at the edges of bursts.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import promql_parser as ast
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Vector = dict[Labels, float]
Value = float | Vector

_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": lambda a, b: a / b if b else (math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)),
}
_AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum,
    "max": max,
    "min": min,
    "avg": lambda values: math.fsum(values) / len(values),
    "count": lambda values: float(len(values)),
}


class Unsupported(ValueError):
    """A part of PromQL this evaluator does not implement."""


@dataclass(frozen=True)
class Scrape:
    """One scrape of a Prometheus text exposition: every sample by name, then by its labels."""

    time: float
    samples: dict[str, Vector]

    @classmethod
    def parse(cls, time: float, text: str) -> Scrape:
        samples: dict[str, Vector] = defaultdict(dict)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
        return cls(time, dict(samples))


def labels(**pairs: str) -> Labels:
    return tuple(sorted(pairs.items()))


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr``'s selectors read."""
    names: set[str] = set()

    def visit(node: ast.Expr) -> None:
        if isinstance(node, ast.VectorSelector) and node.name is not None:
            names.add(node.name)

    ast.walk(ast.parse(expr), visit)
    return names


def _matches(matcher: ast.Matcher, value: str) -> bool:
    op = matcher.op
    if op == ast.MatchOp.Equal:
        return value == matcher.value
    if op == ast.MatchOp.NotEqual:
        return value != matcher.value
    found = re.fullmatch(matcher.value, value) is not None
    return found if op == ast.MatchOp.Re else not found


def _select(selector: ast.VectorSelector, scrape: Scrape) -> Vector:
    if selector.name is None or selector.offset is not None or selector.at is not None:
        raise Unsupported(f"selector {selector}: only a metric name with label matchers")
    matchers = selector.matchers.matchers
    return {
        key: value
        # A missing label matches as the empty string, as in Prometheus.
        for key, value in scrape.samples.get(selector.name, {}).items()
        if all(_matches(matcher, dict(key).get(matcher.name, "")) for matcher in matchers)
    }


def _increase(points: Sequence[float]) -> float:
    """A counter's increase over ``points``; a drop is a restart from zero."""
    return math.fsum(now - before if now >= before else now for before, now in itertools.pairwise(points))


def _bucket_quantile(quantile: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's histogram_quantile over one histogram's (upper bound, cumulative count) buckets."""
    buckets.sort()
    if not buckets or not math.isinf(buckets[-1][0]) or buckets[-1][1] <= 0 or math.isnan(quantile):
        return math.nan
    if not 0 <= quantile <= 1:
        return math.copysign(math.inf, quantile - 0.5)
    rank = quantile * buckets[-1][1]
    index = next(index for index, (_, count) in enumerate(buckets) if count >= rank)
    if index == len(buckets) - 1:
        return buckets[-2][0] if len(buckets) > 1 else math.nan
    upper, count = buckets[index]
    lower, below = (0.0, 0.0) if index == 0 else buckets[index - 1]
    if index == 0 and upper <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / (count - below)


def _group(key: Labels, names: Iterable[str], keep: bool) -> Labels:
    chosen = set(names)
    return tuple((name, value) for name, value in key if (name in chosen) == keep)


class Evaluator:
    """Evaluates expressions at the time of one of ``scrapes`` (in time order)."""

    def __init__(self, scrapes: Sequence[Scrape]) -> None:
        self._scrapes = scrapes

    def at(self, expr: str, index: int) -> Value:
        """``expr``'s value at the time of scrape ``index``."""
        return self._eval(ast.parse(expr), index)

    def series(self, expr: str) -> dict[Labels, list[tuple[float, float]]]:
        """``expr`` at every scrape: each result series as (time, value) points, NaN left out."""
        parsed = ast.parse(expr)
        found: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
        for index, scrape in enumerate(self._scrapes):
            value = self._eval(parsed, index)
            for key, number in value.items() if isinstance(value, dict) else [((), value)]:
                if not math.isnan(number):
                    found[key].append((scrape.time, number))
        return dict(found)

    def _eval(self, node: ast.Expr, index: int) -> Value:
        if isinstance(node, ast.NumberLiteral):
            return float(node.val)
        if isinstance(node, ast.ParenExpr):
            return self._eval(node.expr, index)
        if isinstance(node, ast.VectorSelector):
            return _select(node, self._scrapes[index])
        if isinstance(node, ast.Call):
            return self._call(node, index)
        if isinstance(node, ast.AggregateExpr):
            return self._aggregate(node, index)
        if isinstance(node, ast.BinaryExpr):
            return self._binary(node, index)
        raise Unsupported(f"{type(node).__name__}: {node}")

    def _vector(self, node: ast.Expr, index: int) -> Vector:
        value = self._eval(node, index)
        if not isinstance(value, dict):
            raise Unsupported(f"{node}: an instant vector was expected")
        return value

    def _call(self, node: ast.Call, index: int) -> Vector:
        name = node.func.name
        if name == "rate" and isinstance(node.args[0], ast.MatrixSelector):
            return self._rate(node.args[0], index)
        if name == "histogram_quantile" and isinstance(node.args[0], ast.NumberLiteral):
            return self._histogram_quantile(float(node.args[0].val), self._vector(node.args[1], index))
        raise Unsupported(f"function {name}")

    def _rate(self, node: ast.MatrixSelector, index: int) -> Vector:
        end = self._scrapes[index].time
        start = end - node.range.total_seconds()
        window = [scrape for scrape in self._scrapes[: index + 1] if scrape.time > start]
        points: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
        for scrape in window:
            for key, value in _select(node.vector_selector, scrape).items():
                points[key].append((scrape.time, value))
        return {
            key: _increase([value for _, value in series]) / (series[-1][0] - series[0][0])
            for key, series in points.items()
            if len(series) > 1
        }

    @staticmethod
    def _histogram_quantile(quantile: float, vector: Vector) -> Vector:
        histograms: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
        for key, count in vector.items():
            bound = dict(key).get("le")
            if bound is not None:
                histograms[_group(key, ["le"], keep=False)].append((float(bound), count))
        return {key: _bucket_quantile(quantile, buckets) for key, buckets in histograms.items()}

    def _aggregate(self, node: ast.AggregateExpr, index: int) -> Vector:
        combine = _AGGREGATIONS.get(str(node.op))
        if combine is None or node.param is not None:
            raise Unsupported(f"aggregation {node.op}")
        modifier = node.modifier
        by = modifier is None or modifier.type == ast.AggModifierType.By
        names = modifier.labels if modifier is not None else []
        groups: dict[Labels, list[float]] = defaultdict(list)
        for key, value in self._vector(node.expr, index).items():
            groups[_group(key, names, keep=by)].append(value)
        return {key: combine(values) for key, values in groups.items()}

    def _binary(self, node: ast.BinaryExpr, index: int) -> Value:
        apply = _ARITHMETIC.get(str(node.op))
        if apply is None:
            raise Unsupported(f"operator {node.op}")
        lhs, rhs = self._eval(node.lhs, index), self._eval(node.rhs, index)
        if isinstance(lhs, dict):
            if isinstance(rhs, dict):
                return _match(node.modifier, lhs, rhs, apply)
            return {key: apply(value, rhs) for key, value in lhs.items()}
        if isinstance(rhs, dict):
            return {key: apply(lhs, value) for key, value in rhs.items()}
        return apply(lhs, rhs)


def _match(
    modifier: ast.BinModifier | None, lhs: Vector, rhs: Vector, apply: Callable[[float, float], float]
) -> Vector:
    """One-to-one vector matching: on all labels, or ``on``/``ignoring`` some; the result keeps the matched ones."""
    matching = modifier.matching if modifier is not None else None
    if modifier is not None and modifier.card != ast.VectorMatchCardinality.OneToOne:
        raise Unsupported("group_left and group_right")
    names = matching.labels if matching is not None else []
    keep = matching is not None and matching.type == ast.LabelModifierType.Include
    right = {_group(key, names, keep): value for key, value in rhs.items()}
    result: Vector = {}
    for key, value in lhs.items():
        matched = _group(key, names, keep)
        if matched in right:
            result[matched] = apply(value, right[matched])
    return result
