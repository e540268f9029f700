"""Closed-loop saturation runs with wrk and the scenario scripts in ``bench/wrk``."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from bench.measure import LoadResult

SCRIPTS = Path(__file__).resolve().parent / "wrk"


async def run_wrk(
    url: str,
    script: str,
    data_file: Path,
    run_id: str,
    *,
    seconds: int,
    connections: int,
) -> LoadResult:
    """wrk with one thread (it has one core) and ``connections`` keep-alive connections."""
    path = SCRIPTS / f"{script}.lua"
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(path), url, "--", str(data_file), run_id,
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "LC_ALL": "C"}
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=seconds + 60)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {stderr.decode()}{stdout.decode()}")
    lines = [line for line in stdout.decode().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"wrk printed no summary: {stdout.decode()}{stderr.decode()}")
    summary = json.loads(lines[-1])
    return LoadResult(
        tool="wrk",
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        errors=sum(summary["errors"].values()),
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
    )
