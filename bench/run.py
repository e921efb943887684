"""Benchmark the API against a bare baseline on this machine, in one run.

Usage (from the repository root; needs wrk: ``apt-get install wrk``):

    .venv/bin/python bench/run.py [--quick] [--users N] [--todos N] [--metrics] [--workers W]
                                  [--duration S] [--warmup S] [--rounds R] [--json PATH]

It starts PostgreSQL (embedded in a temporary folder, or a fresh ``<name>_bench``
database on DATABASE_URL's server), migrates and seeds it (5 flags, 1,000 verified users
sharing one password hash), starts the API as production runs it and the bare baseline
(``bench/baseline.py``) under the same uvicorn settings, drives each endpoint with
``wrk -t2 -c32`` (warm-up, then a measured interval, several rounds), measures
``is_enabled()`` in process, ``/_status`` and ``GET /feature-flags`` under a login
storm, RSS per worker after 50k and 100k requests, with ``--users N``, login and
``GET /users/user`` with N users and, with ``--todos N``, the todo lists
(``GET /todos/todos``, ``GET /todos/projects/{id}``; pages 1 and 50, newest first and by
title) with N todos over 10,000 users and 1,000 projects, against the same with 1,000,
and, with ``--metrics``, the hot endpoints with ``METRICS_ENABLED`` on against off.
It prints a table, writes the figures as JSON (``bench/results/`` by default) and stops
everything it started, also on Ctrl-C.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV.resolve():
    os.execv(VENV_PYTHON, [str(VENV_PYTHON), *sys.argv])  # noqa: S606 -- the project's venv
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
from dataclasses import asdict  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from types import FrameType  # noqa: E402
from typing import Any  # noqa: E402

from bench import stack  # noqa: E402
from bench.phases import BASE_TODOS, BASE_USERS, Benchmark, Plan, say  # noqa: E402
from bench.report import endpoint_table, ratio, target_table  # noqa: E402
from bench.wrk import WRK_MISSING, wrk_path  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"


class _Stop(Exception):
    """SIGTERM, turned into an exception so that everything started gets stopped."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark the API against a bare baseline (see bench/README.md).",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 1 s each")
    p.add_argument(
        "--users", type=int, metavar="N",
        help=f"also measure login and GET /users/user with N users (> {BASE_USERS:,})",
    )  # fmt: skip
    p.add_argument(
        "--todos", type=int, metavar="N",
        help=f"also measure the todo lists with N todos (> {BASE_TODOS:,}) against {BASE_TODOS:,}",
    )  # fmt: skip
    p.add_argument(
        "--metrics", action="store_true",
        help="also compare the hot endpoints with METRICS_ENABLED on and off",
    )  # fmt: skip
    p.add_argument("--workers", type=int, default=2, metavar="W", help="uvicorn workers (2)")
    p.add_argument("--duration", type=int, metavar="S", help="measured seconds (10; quick 1)")
    p.add_argument("--warmup", type=int, metavar="S", help="warm-up seconds (3; quick 0)")
    p.add_argument("--rounds", type=int, metavar="R", help="rounds (3; quick 1)")
    p.add_argument("--json", type=Path, metavar="PATH", help="where to write the figures")
    return p


def make_plan(args: argparse.Namespace) -> Plan:
    quick = bool(args.quick)
    duration = args.duration if args.duration is not None else (1 if quick else 10)
    plan = Plan(
        quick=quick,
        workers=args.workers,
        duration_s=duration,
        warmup_s=args.warmup if args.warmup is not None else (0 if quick else 3),
        rounds=args.rounds if args.rounds is not None else (1 if quick else 3),
        users=args.users,
        memory_steps=(1_000, 2_000) if quick else (50_000, 100_000),
        micro_calls=20_000 if quick else 200_000,
        micro_repeats=3 if quick else 5,
        status_s=duration,
        memory_cap_s=20 if quick else 240,
        login_min_s=2 if quick else 4,
        login_connections=4 if quick else 32,
        storm_connections=4 if quick else 16,
        todos=args.todos,
        metrics=bool(args.metrics),
    )
    if plan.users is not None and plan.users <= BASE_USERS:
        raise SystemExit(f"error: --users must be more than {BASE_USERS:,}")
    if plan.todos is not None and plan.todos <= BASE_TODOS:
        raise SystemExit(f"error: --todos must be more than {BASE_TODOS:,}")
    if min(plan.workers, plan.duration_s, plan.rounds) < 1 or plan.warmup_s < 0:
        raise SystemExit("error: --workers, --duration and --rounds must be at least 1")
    return plan


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def run(plan: Plan, json_path: Path) -> dict[str, Any]:
    """The whole benchmark; everything it starts is stopped when it returns or raises."""
    log_dir = json_path.with_name(json_path.stem + "-logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    say(f"benchmark: {plan.rounds} round(s) of {plan.warmup_s}s warm-up + {plan.duration_s}s "
        f"per endpoint, {plan.workers} workers; roughly {plan.estimate_s() // 60 + 1} min; "
        f"logs in {log_dir}")  # fmt: skip
    started = datetime.now(UTC)
    code = git_commit()  # the code that runs: the tree may change while the benchmark does
    database = "DATABASE_URL's server" if os.environ.get("DATABASE_URL") else "embedded"
    with contextlib.ExitStack() as exits:
        bench = Benchmark(plan, exits, log_dir)
        bench.prepare_database()
        env = stack.production_env(bench.url) | {"BENCH_DATABASE_URL": bench.url}
        env["BENCH_JWT_SECRET"] = secrets.token_urlsafe(48)
        os.environ.update(env)  # the in-process micro-benchmark builds the app too
        stack.clear_settings_caches()
        bench.micro()
        bench.start_servers(env)
        bench.define_endpoints(bench.login())
        bench.status_idle()
        bench.run_rounds(list(bench.endpoints))
        bench.status_under_login()
        bench.flags_under_login()
        bench.memory()
        bench.users_scale()
        bench.todos_scale()
        bench.metrics_cost()
        bench.stop_servers()
        say("stopping PostgreSQL")
    say("everything the benchmark started is stopped")
    targets = bench.all_targets()
    return {
        "meta": {
            "started": started.isoformat(timespec="seconds"),
            "seconds": round((datetime.now(UTC) - started).total_seconds()),
            **code,
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
            "plan": asdict(plan),
            "database": database,
            "notes": bench.notes,
            "processes": bench.pids,
        },
        "endpoints": [e.to_json(ratio(e, bench.endpoints)) for e in bench.endpoints.values()],
        **bench.sections,
        "targets": [asdict(t) | {"result": t.result} for t in targets],
        "_tables": (endpoint_table(bench.endpoints), target_table(targets)),
    }


def main() -> int:
    args = parser().parse_args()
    plan = make_plan(args)
    if wrk_path() is None:
        print(WRK_MISSING, file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path: Path = args.json or RESULTS_DIR / f"{stamp}.json"
    signal.signal(signal.SIGTERM, _raise_stop)
    database_url = os.environ.get("DATABASE_URL")
    try:
        figures = run(plan, json_path.resolve())
    except (KeyboardInterrupt, _Stop):
        print("interrupted; everything the benchmark started is stopped", file=sys.stderr)
        return 130
    except stack.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        os.environ.pop("DATABASE_URL", None)
        if database_url:
            os.environ["DATABASE_URL"] = database_url
    endpoints, targets = figures.pop("_tables")
    say(f"\n{endpoints}\n\n{targets}\n")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(figures, indent=2) + "\n")
    say(f"figures written to {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
