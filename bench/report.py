"""The markdown report and the PNG plots, from ``results.json``.

``python -m bench.report bench/results/results.json`` redraws them without re-running.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

PERCENTILES = ("p50_ms", "p90_ms", "p99_ms")
COLOURS = ("#4c72b0", "#dd8452", "#c44e52")


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def _save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _rows(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every load scenario, the bare baseline first."""
    return [("bare", results["baselines"]["bare"]), *results["scenarios"].items()]


def plot_latency(results: dict[str, Any], path: Path) -> None:
    rows = _rows(results)
    figure, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    width = 0.26
    for axis, phase, heading in (
        (axes[0], "saturation", "At saturation (wrk, closed loop)"),
        (axes[1], "half_rate", "At half the saturation rate (open loop)"),
    ):
        for index, (percentile, colour) in enumerate(zip(PERCENTILES, COLOURS, strict=True)):
            values = [max(row[phase][percentile], 0.01) for _, row in rows]
            positions = [i + (index - 1) * width for i in range(len(rows))]
            axis.bar(positions, values, width, label=percentile.removesuffix("_ms"), color=colour)
        axis.set_yscale("log")
        axis.set_title(heading)
        axis.set_xticks(range(len(rows)))
        axis.set_xticklabels([name for name, _ in rows], rotation=20, ha="right")
        axis.grid(axis="y", which="both", alpha=0.3)
        if phase == "half_rate":
            axis.axhline(10, color="grey", linestyle="--", linewidth=1)
            axis.text(len(rows) - 0.5, 10.5, "10 ms target (cached GET)", ha="right", va="bottom", fontsize=8)
    axes[0].set_ylabel("latency (ms, log scale)")
    axes[0].legend(title="percentile")
    figure.suptitle("Latency per scenario")
    _save(figure, path)


def plot_throughput(results: dict[str, Any], path: Path) -> None:
    scenarios = results["scenarios"]
    names = list(scenarios)
    figure, axis = plt.subplots(figsize=(12, 5.5))
    width = 0.38
    measured = [scenarios[name]["saturation"]["rps"] for name in names]
    baseline = [scenarios[name]["baseline_rps"] for name in names]
    axis.bar([i - width / 2 for i in range(len(names))], measured, width, label="service over HTTP", color=COLOURS[0])
    axis.bar(
        [i + width / 2 for i in range(len(names))], baseline, width, label="its raw dependency calls", color=COLOURS[1]
    )
    for i, name in enumerate(names):
        ratio = scenarios[name]["ratio_to_baseline"]
        axis.text(i, max(measured[i], baseline[i]) * 1.15, f"{ratio:.0%}", ha="center", fontsize=9)
    bare = results["baselines"]["bare"]["saturation"]["rps"]
    axis.axhline(bare, color="grey", linestyle="--", linewidth=1)
    axis.text(len(names) - 0.5, bare * 1.08, f"bare aiohttp ceiling {bare:.0f} req/s", ha="right", fontsize=8)
    axis.set_yscale("log")
    axis.set_ylim(top=max(*measured, *baseline, bare) * 4)  # room for the labels
    axis.set_ylabel("requests per second (log scale)")
    axis.set_xticks(range(len(names)))
    axis.set_xticklabels(names, rotation=25, ha="right")
    axis.set_title("Saturation throughput against the raw dependency calls (percentage = ratio)")
    axis.legend(loc="upper right")
    axis.grid(axis="y", which="both", alpha=0.3)
    _save(figure, path)


def _breakdown_line(point: dict[str, Any] | None) -> list[str]:
    """The cold breakdown read's row: sessions of 20 module results, read at /courses/{id}/modules."""
    if point is None:
        return []
    return [
        f"| {point['sessions']}, 20 results each, as a breakdown | {point['item_bytes']} "
        f"| {point['pages']} ({point['expected_pages']}) | {_ms(point['query_ms'])} ms | {_ms(point['rebuild_ms'])} ms "
        f"| {_ms(point['cold_read_ms'])} ms | {point['rebuild_ms'] * 1000 / point['sessions']:.0f} |"
    ]


def plot_rebuild(results: dict[str, Any], path: Path) -> None:
    points = results["rebuild"]["points"]
    fit = results["rebuild"]["fit"]
    sessions = [point["sessions"] for point in points]
    figure, axis = plt.subplots(figsize=(8, 5.2))
    for key, style, label, colour in (
        ("cold_read_ms", "o-", "cold GET, client side", COLOURS[0]),
        ("rebuild_ms", "s-", "rebuild query (service metric)", COLOURS[1]),
        ("query_ms", "^:", "the same Query, called directly", "grey"),
    ):
        axis.plot(sessions, [point[key] for point in points], style, label=label, color=colour)
    # The fitted line over the whole range, drawn only where it is positive (the axes are logarithmic).
    grid = [sessions[0] * (sessions[-1] / sessions[0]) ** (i / 100) for i in range(101)]
    fitted = [fit["intercept_ms"] + fit["slope_ms"] * n for n in grid]
    shown = [(n, y) for n, y in zip(grid, fitted, strict=True) if y > 0]
    axis.plot(
        [n for n, _ in shown], [y for _, y in shown], "--", color=COLOURS[2], label=f"linear fit (R² = {fit['r2']:.3f})"
    )
    for point in points:
        axis.annotate(
            f"{point['pages']} page{'s' if point['pages'] > 1 else ''}",
            (point["sessions"], point["rebuild_ms"]),
            textcoords="offset points",
            xytext=(6, -14),
            fontsize=8,
        )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_ylim(bottom=min(point[key] for point in points for key in ("cold_read_ms", "rebuild_ms", "query_ms")) / 3)
    axis.set_xlabel("sessions in the course (log scale)")
    axis.set_ylabel("milliseconds (log scale)")
    axis.set_title("Cold aggregate rebuild time against session count")
    axis.grid(which="both", alpha=0.3)
    axis.legend()
    _save(figure, path)


def _load_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| scenario | req/s | p50 | p90 | p99 | server CPU µs/req | half rate: offered → done req/s | p50 | p90 | p99 "
        "| generator lag p99 | vs its dependency calls | vs bare aiohttp |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in _rows(results):
        sat, half = row["saturation"], row["half_rate"]
        baseline, vs_bare = "—", "100%"
        if name != "bare":
            baseline = f"{row['ratio_to_baseline']:.0%} of {row['baseline_rps']:.0f} ({row['baseline']})"
            vs_bare = f"{row['ratio_to_bare']:.0%}"
        errors = sat["errors"] + half["errors"]
        flag = f" ⚠ {errors} errors" if errors else ""
        lines.append(
            f"| {name}: {row['title']}{flag} | {sat['rps']:.0f} | {_ms(sat['p50_ms'])} | {_ms(sat['p90_ms'])} "
            f"| {_ms(sat['p99_ms'])} | {sat.get('server_cpu_us', '—')} | {half['offered_rps']:.0f} → {half['rps']:.0f} "
            f"| {_ms(half['p50_ms'])} | {_ms(half['p90_ms'])} | {_ms(half['p99_ms'])} "
            f"| {_ms(half['generator_lag_p99_ms'])} | {baseline} | {vs_bare} |"
        )
    return lines


def _batch_lines(results: dict[str, Any]) -> list[str]:
    """Per item, for the scenarios whose requests carry several sessions."""
    rows = [(name, row) for name, row in results["scenarios"].items() if row.get("per_item")]
    if not rows:
        return []
    lines = [
        "## Batches, per item",
        "",
        "| scenario | items per request | requests/s | items/s | server CPU µs/request "
        "| server CPU µs/item | its dependency calls, items/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows:
        per_item = row["per_item"]
        lines.append(
            f"| {name}: {row['title']} | {row['items_per_request']} "
            f"| {row['saturation']['rps']:.1f} | {per_item['items_per_s']:.0f} "
            f"| {row['saturation'].get('server_cpu_us', '—')} | {per_item['server_cpu_us'] or '—'} "
            f"| {per_item['baseline_items_per_s']:.0f} ({row['baseline']}) |"
        )
    lines += [
        "",
        "Each item is recorded as its own POST would be (one UpdateItem and the apply script); its dependency "
        "calls ran with the same concurrency, each call being a whole batch's items, as many at a time as the "
        "route records them.",
        "",
    ]
    return lines


def _board_lines(results: dict[str, Any]) -> list[str]:
    """The large course's leaderboard: its rebuild, its memory, and what points add to a POST."""
    board = results.get("large_board")
    if not board:
        return []
    read, raw = results["scenarios"]["get_leaderboard_100k"], results["baselines"]["raw"]
    learners, half = board["learners"], read["half_rate"]
    return [
        f"## A course of {learners} learners: its leaderboard",
        "",
        f"Rebuilt from nothing (course hash and boards dropped) as a reader's miss rebuilds it: the roster is "
        f"{board['dynamodb_queries']} strongly consistent Query pages over its 16 partitions (no Scan; counted "
        "from the rows' sizes, one per started MB of a partition, and not timed: DynamoDB serves one in tens "
        f"of ms with the partitions read at once); then Redis took **{board['redis_ms']:.0f} ms** in "
        f"{board['redis_calls']} script calls (expected {board['expected_redis_calls']}: the claim, the rows in "
        "chunks, the board's read with the learner's place).",
        "",
        f"Cached, the same read (top 10 and the learner's place, one script call): "
        f"{read['saturation'].get('server_cpu_us', '—')} µs of server CPU per request, "
        f"p50 {_ms(half['p50_ms'])} / p99 {_ms(half['p99_ms'])} ms at half rate; the board script alone in a loop: "
        f"{raw['big_board_read']['rps']:.0f} calls/s.",
        "",
        f"Redis memory (`MEMORY USAGE`): the all-time board {board['board_bytes'] / 1e6:.1f} MB "
        f"({board['board_bytes'] / learners:.0f} bytes a learner), this week's ({board['weekly_learners']} "
        f"learners) {board['weekly_board_bytes'] / 1e6:.1f} MB, the course's hash {board['hash_bytes'] / 1e6:.1f} MB.",
        "",
        "What points add to a POST: no DynamoDB call (the points are in the session's one `UpdateItem`) and one "
        "Redis script call, on the learner's points, sent beside the course aggregate's, so the POST waits for "
        f"no extra round trip. That call and the scoring, in a loop: {raw['points_apply']['rps']:.0f} calls/s, "
        f"{1e6 / raw['points_apply']['rps']:.0f} µs each of this process's time (one core, "
        f"{results['meta']['plan']['connections']} at a time).",
        "",
    ]


def _capture_lines(results: dict[str, Any]) -> list[str]:
    """What change capture adds to each write, next to a POST's own server CPU."""
    capture = results.get("change_capture")
    if not capture:
        return []
    post_cpu = results["scenarios"].get("post_new", {}).get("saturation", {}).get("server_cpu_us")
    shapes = {
        "single": "one record per batch, each of another learner",
        "sync": "one learner's offline sync per batch (one course)",
    }
    lines = [
        "## Change capture, per stream record",
        "",
        "`ChangeApplier.apply` (what the stream's Lambda function runs) on DynamoDB Streams records of "
        "writes just made, with this run's Redis and DynamoDB stand-in, batches applied one after another "
        "on the server's core. CPU is the applying process's own (the servers' is theirs); DynamoDB round "
        "trips are the requests its clients sent (retries included), Redis calls the commands and scripts the "
        "cache sent; Redis server commands count those its scripts ran too.",
        "",
        "| batches (how many) | records per batch | CPU µs/record | wall ms/record | DynamoDB round trips/record "
        "| Redis calls/record | Redis server commands/record |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, shape in capture.items():
        lines.append(
            f"| {shapes.get(name, name)} ({shape['batches']}) | {shape['records_per_batch']:g} "
            f"| {shape['cpu_us_per_record']} | {_ms(shape['wall_ms_per_record'])} "
            f"| {shape['dynamodb_calls_per_record']:g} | {shape['redis_calls_per_record']:g} "
            f"| {shape['redis_server_commands_per_record']:g} |"
        )
    if post_cpu and "single" in capture:
        share = capture["single"]["cpu_us_per_record"] / post_cpu
        lines += [
            "",
            f"A lone write's record costs the consumer {capture['single']['cpu_us_per_record']} µs of CPU, "
            f"{share:.0%} of the {post_cpu} µs the service spends on the POST itself (post_new above); "
            "records of one learner's course in one batch share a single roster recomputation.",
        ]
    return [*lines, ""]


def _client_lines(clients: dict[str, Any]) -> list[str]:
    boto, wire, ratio = clients["aioboto3"], clients["wire"], clients["ratio"]
    rows = (
        ("UpdateItem", "a new session's conditional upsert, per call"),
        ("GetItem", "a session read, per call"),
        ("Query_per_session", f"the rebuild's Query of {clients['sessions']} sessions, per session"),
    )
    return [
        "## DynamoDB client, CPU per call",
        "",
        "The same store calls through the service's wire and through aioboto3 (as the hot calls went before "
        f"it), to the same DynamoDB stand-in, {clients['concurrency']} at a time, from this process on the server's "
        "core: its CPU µs per call (bench/clients.py).",
        "",
        "| call | aioboto3 µs | wire µs | aioboto3 / wire |",
        "|---|---:|---:|---:|",
        *(f"| {title} | {boto[call]:.1f} | {wire[call]:.1f} | {ratio[call]:.2f} |" for call, title in rows),
        "",
    ]


def _moto_baseline(row: dict[str, Any]) -> str:
    if "baseline_rps" not in row:
        return "—"
    return f"{row['baseline_rps']:.0f} ({row['ratio_to_baseline']:.2f})"


def _moto_lines(results: dict[str, Any]) -> list[str]:
    """The routes with CPU targets against the stand-in and against moto's server, in the same run."""
    moto = results.get("against_moto")
    if not moto:
        return []
    scenarios = results["scenarios"]
    return [
        "## Against moto",
        "",
        "The routes with CPU targets at saturation once more, with moto's server as the service's DynamoDB "
        "(the same sessions in a table of its own): what the bench measured before it had the stand-in. moto "
        "answers one request at a time, about 13 ms an `UpdateItem`, so the service's core mostly waits and "
        "its CPU per request carries an idle core's wake-ups.",
        "",
        "| route | stand-in: req/s | server CPU µs/request | moto: req/s | server CPU µs/request "
        "| moto: its dependency calls, req/s (ratio) |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {scenarios[name]['title']} | {scenarios[name]['saturation']['rps']:.0f} "
            f"| {scenarios[name]['saturation'].get('server_cpu_us', '—')} | {row['rps']:.0f} "
            f"| {row.get('server_cpu_us') or '—'} "
            f"| {_moto_baseline(row)} |"
            for name, row in moto.items()
        ),
        "",
        "Against moto both a write's rate and its dependency calls' are bound by moto, so their ratio is the "
        "share of a dependency-bound write that the service's HTTP layer leaves (the targets' \"both against "
        'moto" rows); against the stand-in neither is bound by DynamoDB, and the same ratio is the share of the '
        "route's CPU that its dependency calls are.",
        "",
    ]


def _tracing_lines(results: dict[str, Any]) -> list[str]:
    """The cached read with traces on beside the same read with them off, in the same run."""
    traced = results.get("tracing")
    if not traced:
        return []
    off, on = results["scenarios"]["get_course"]["saturation"], traced["saturation"]
    cpu_ratio = traced["cpu_ratio_to_off"]
    return [
        "## Traces on",
        "",
        "The cached read on a second service whose traces are on (`OTEL_EXPORTER_OTLP_ENDPOINT` set, every "
        "request sampled), exporting by OTLP/HTTP to a sink on the load core that counts the spans and discards "
        "them, beside the same read of this run on the service without the variable.",
        "",
        "| cached GET /courses/{id} | req/s | server CPU µs/request | requests exported | spans per request |",
        "|---|---:|---:|---:|---:|",
        f"| traces off | {off['rps']:.0f} | {off.get('server_cpu_us', '—')} | — | — |",
        f"| traces on | {on['rps']:.0f} | {on.get('server_cpu_us', '—')} | {traced['exported_share']:.1%} "
        f"| {traced['spans_per_request']} |",
        f"| on / off | {traced['ratio_to_off']:.2f} | {cpu_ratio if cpu_ratio is not None else '—'} | | |",
        "",
        f"Traces on, the cached read runs at {traced['ratio_to_bare']:.0%} of the bare handler's rate.",
        "",
    ]


def _cpu_per_session(point: dict[str, Any]) -> str:
    cpu = point.get("rebuild_cpu_ms")
    return f"{cpu * 1000 / point['sessions']:.0f}" if cpu else "—"


def render(results: dict[str, Any]) -> str:
    meta, info = results["meta"], results["meta"]["machine"]
    raw = results["baselines"]["raw"]
    fit, cpu_fit = results["rebuild"]["fit"], results["rebuild"]["cpu_fit"]
    pinning = (
        f"server on core {info['server_core']}; wrk, the fixed-rate generator, redis-server, the DynamoDB "
        f"stand-in and moto's Cognito server on core {info['load_core']}"
        if info["server_core"] is not None
        else "not pinned (fewer than two cores or no taskset)"
    )
    lines = [
        "# Benchmark results" + (" (smoke run: numbers mean nothing)" if meta["smoke"] else ""),
        "",
        f"Run finished {meta['finished']} in {meta['seconds']:.0f} s by `scripts/bench`. Machine: {info['cpu']}, "
        f"{info['cores']} cores, {info['memory_gib']} GiB, Linux {info['kernel']}, Python {info['python']}, "
        f"{info['wrk']}. Load average at start: {', '.join(map(str, info['load_average_at_start']))}.",
        "",
        f"Pinning: {pinning}. The service runs as in production: `STATS_ENV=production`, gunicorn with the "
        "uvloop worker, one worker, access log off, Redis over loopback TCP.",
        "",
        "**Noise.** This is a shared virtual machine: the same run repeated moves by ±20% and more. Every ratio "
        f"below is between numbers measured in this one run; the bare baseline and the cached read alternate "
        f"over {meta['plan']['rounds']} rounds and the best round of each counts. The server's CPU time per "
        "request (from /proc) is steadier than req/s.",
        "",
        "**The bench's DynamoDB is a stand-in** (`bench/dynamo.py`): the calls the service makes, with "
        "DynamoDB's semantics (checked against moto's by `tests/bench/test_dynamo.py`), answered in tens of "
        "µs over kept-alive connections on the load core, so that the DynamoDB routes are bound by the "
        "service's own core, as they are against DynamoDB, and their server CPU per request is the service's "
        "work rather than an idle core's wake-ups. Its latency is not DynamoDB's (a few ms a call), and its "
        "answers, coming in µs, often wake the service once for several: against DynamoDB a route's CPU per "
        "request lies between this run's figure and moto's (\"Against moto\"), nearer this one's the busier "
        "the task. The "
        "scenarios are also judged as a ratio to the same dependency calls made in a loop without HTTP (same "
        "clients and settings, same core, same concurrency). moto's server, which the tests and local mode "
        "use, is the bench's Cognito (`refresh` calls it), and the routes with CPU targets run against it "
        'once more at the end ("Against moto").',
        "",
        "## Targets",
        "",
        "| target | measured | wanted | met |",
        "|---|---|---|---|",
        *(
            f"| {t['name']} | {t['value']} | {t['target']} | {'yes' if t['met'] else '**no**'} |"
            for t in results["targets"]
        ),
        "",
        "## Throughput and latency (ms)",
        "",
        *_load_table(results),
        "",
        f"Saturation: wrk, one thread, {meta['plan']['connections']} connections, {meta['plan']['seconds']} s. "
        "Half rate: the open-loop generator offers half the saturation rate for "
        f"{meta['plan']['fixed_seconds']:g} s and measures each latency from the request's scheduled time; "
        "its own lateness in sending (generator lag) is part of that latency. The bare handler's half-rate "
        "p99 is the floor this machine's scheduling noise puts under every p99.",
        "",
        "![latency](latency.png)",
        "",
        "![throughput](throughput.png)",
        "",
        "## Baselines",
        "",
        "Raw dependency calls, in a loop with the same concurrency, on the server's core:",
        "",
        "| calls | req/s | p50 | p99 |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {value['rps']:.0f} | {_ms(value['p50_ms'])} | {_ms(value['p99_ms'])} |"
            for name, value in raw.items()
            if name != "mix"
        ),
        f"| mix (derived: 9 reads per write) | {raw['mix']['rps']:.0f} | | |",
        "",
        *(["post_batch's rate is in batches (of the route's size) per second.", ""] if "post_batch" in raw else []),
        *_batch_lines(results),
        *_capture_lines(results),
        *_board_lines(results),
        *_client_lines(results["clients"]),
        *_moto_lines(results),
        *_tracing_lines(results),
        "## Cold aggregate rebuilds",
        "",
        "| sessions | item bytes | Query pages (expected) | Query called directly | rebuild (service) "
        "| cold GET (client) | rebuild µs per session | server CPU µs per session |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {p['sessions']} | {p['item_bytes']} | {p['pages']} ({p['expected_pages']}) | {_ms(p['query_ms'])} ms "
            f"| {_ms(p['rebuild_ms'])} ms | {_ms(p['cold_read_ms'])} ms "
            f"| {p['rebuild_ms'] * 1000 / p['sessions']:.0f} | {_cpu_per_session(p)} |"
            for p in results["rebuild"]["points"]
        ),
        *_breakdown_line(results["rebuild"].get("breakdown")),
        "",
        f"Linear fit: {fit['slope_ms'] * 1000:.1f} µs per session {'+' if fit['intercept_ms'] >= 0 else '-'} "
        f"{abs(fit['intercept_ms']):.1f} ms, R² = {fit['r2']:.4f}; of the server's CPU: "
        f"{cpu_fit['slope_ms'] * 1000:.1f} µs per session, R² = {cpu_fit['r2']:.4f} (/proc counts CPU time in clock "
        "ticks, so the smaller courses' figures are coarse).",
        "",
        "![rebuild](rebuild.png)",
        "",
        "## Stampede",
        "",
        f"{results['stampede']['readers']} concurrent reads of one cold aggregate "
        f"({results['stampede']['sessions']} sessions): **{results['stampede']['rebuilds']} rebuild(s)**, "
        f"{results['stampede']['correct_replies']} correct replies, all answered in "
        f"{results['stampede']['seconds'] * 1000:.0f} ms.",
        "",
    ]
    return "\n".join(lines)


def write_report(results: dict[str, Any], out: Path) -> None:
    (out / "report.md").write_text(render(results))
    plot_latency(results, out / "latency.png")
    plot_throughput(results, out / "throughput.png")
    plot_rebuild(results, out / "rebuild.png")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.report RESULTS_JSON", file=sys.stderr)
        return 2
    path = Path(argv[0])
    write_report(json.loads(path.read_text()), path.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
