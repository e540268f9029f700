"""``python -m bench.dashboard``: the operator's dashboard drawn from a local run.

    python -m bench.dashboard [--out deploy/grafana] [--seconds 60] [--rate 40] [--series FILE]

It runs the service locally under a mixed load (``bench.localrun``), evaluates every panel's
PromQL (``bench.panels``, the same queries as the Grafana dashboard's) over the scrapes with
``bench.promql``, and draws them all to ``local-dashboard.png``; ``--series`` also writes the
evaluated series and what the run did as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.localrun import Plan, Run, drive, local_service
from bench.panels import PANELS, SERVICE, Panel, interpolate
from bench.promql import Evaluator, Labels

ROOT = Path(__file__).resolve().parent.parent
PNG = "local-dashboard.png"
# Grafana's $__rate_interval for a 1 s scrape interval is at least four scrapes.
RATE_INTERVAL = "5s"
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# How each Grafana unit is drawn: a factor and the axis label.
_UNITS = {
    "reqps": (1.0, "requests/s"),
    "s": (1000.0, "ms (log scale)"),
    "percentunit": (100.0, "%"),
    "percent": (1.0, "%"),
    "ops": (1.0, "per second"),
    "short": (1.0, ""),
}
_COLUMNS = 3

Series = dict[str, dict[str, list[tuple[float, float]]]]


def legend(template: str, key: Labels) -> str:
    """Grafana's legendFormat: each {{label}} replaced by the series' value of it."""
    values = dict(key)
    return _LEGEND.sub(lambda match: values.get(match[1], ""), template).strip()


def evaluate(run: Run) -> Series:
    """Every service panel's series over ``run``'s scrapes, by panel title, then legend."""
    evaluator = Evaluator(run.scrapes)
    found: Series = {}
    for panel in PANELS:
        if panel.source != SERVICE:
            continue
        lines = found.setdefault(panel.title, {})
        for query in panel.queries:
            for key, points in evaluator.series(interpolate(query.expr, RATE_INTERVAL)).items():
                lines[legend(query.legend, key)] = points
    return found


def _events(axis: Axes, run: Run) -> None:
    for moment, _ in run.events:
        axis.axvline(moment, color="grey", linestyle=":", linewidth=1)


def _plot(axis: Axes, panel: Panel, lines: dict[str, list[tuple[float, float]]], run: Run) -> None:
    factor, label = _UNITS[panel.unit]
    for name, points in sorted(lines.items()):
        axis.plot([t for t, _ in points], [v * factor for _, v in points], label=name, linewidth=1.2)
    _events(axis, run)
    axis.set_xlim(0, run.plan.seconds)
    axis.set_xlabel("seconds into the load")
    axis.set_ylabel(label)
    axis.grid(alpha=0.3)
    if panel.unit == "s":
        # Cached reads take milliseconds and a frozen dependency seconds: both must stay readable.
        axis.set_yscale("log")
    if lines:
        axis.legend(fontsize=6.5, ncols=2 if len(lines) > 6 else 1, loc="upper left")
    else:
        axis.text(0.5, 0.5, "no series: none occurred in this run", ha="center", va="center", transform=axis.transAxes)


def _unavailable(axis: Axes, panel: Panel) -> None:
    axis.set_xticks([])
    axis.set_yticks([])
    metrics = "\n".join(query.expr for query in panel.queries)
    axis.text(0.5, 0.6, "not available locally", ha="center", va="center", fontsize=14, transform=axis.transAxes)
    axis.text(
        0.5, 0.3, f"AWS CloudWatch, in Grafana through the CloudWatch exporter:\n{metrics}",
        ha="center", va="center", fontsize=6, color="dimgrey", wrap=True, transform=axis.transAxes,
    )  # fmt: skip


def draw(run: Run, series: Series, path: Path) -> None:
    rows = -(-len(PANELS) // _COLUMNS)
    figure, axes = plt.subplots(rows, _COLUMNS, figsize=(19, 4.1 * rows), layout="constrained")
    for axis, panel in zip(axes.flat, PANELS, strict=False):
        axis.set_title(panel.title, fontsize=11, loc="left")
        if panel.source == SERVICE:
            _plot(axis, panel, series[panel.title], run)
        else:
            _unavailable(axis, panel)
    for axis in axes.flat[len(PANELS) :]:
        axis.axis("off")
    happened = ", ".join(f"{what} at {moment:.0f} s" for moment, what in run.events)
    figure.suptitle(
        f"Learning stats service in local mode: {run.plan.seconds:.0f} s of mixed load at about "
        f"{run.plan.rate:.0f} requests/s, /metrics scraped every second\nDotted lines: {happened}",
        fontsize=12,
    )
    figure.savefig(path, dpi=80)
    plt.close(figure)


def summary(run: Run, series: Series) -> dict[str, Any]:
    """What the run did and what its panels show, for ``--series`` and the terminal."""
    return {
        "seconds": run.plan.seconds,
        "rate": run.plan.rate,
        "scrapes": len(run.scrapes),
        "events": [{"at": round(moment, 2), "what": what} for moment, what in run.events],
        "statuses": {str(status): count for status, count in sorted(run.statuses.items())},
        "metric_names": sorted({name for scrape in run.scrapes for name in scrape.samples}),
        "panels": series,
    }


def render(out: Path, plan: Plan, series_path: Path | None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dashboard-") as work, local_service(Path(work)) as (url, servers):
        run = asyncio.run(drive(url, servers, plan))
    series = evaluate(run)
    draw(run, series, out / PNG)
    report = summary(run, series)
    if series_path is not None:
        series_path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{out / PNG}: {report['scrapes']} scrapes, responses by status {report['statuses']}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "deploy" / "grafana", help="where the PNG goes")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load runs")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second the load aims at")
    parser.add_argument("--series", type=Path, help="also write the evaluated series to this JSON file")
    args = parser.parse_args(argv)
    return render(args.out, Plan(args.seconds, args.rate), args.series)


if __name__ == "__main__":
    sys.exit(main())
