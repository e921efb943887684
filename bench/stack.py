"""What the benchmark runs against: PostgreSQL, its seeds, the API and the baseline servers.

Everything here is started inside a ``contextlib.ExitStack`` and stopped by it, in reverse
order, also on Ctrl-C, SIGTERM and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg

REPO_ROOT = Path(__file__).resolve().parent.parent
FLAG_CODENAMES = tuple(f"BENCH_FLAG_{n}" for n in range(1, 6))
ACTIVE_FLAG = FLAG_CODENAMES[0]  # on for everyone
TARGETED_FLAG = FLAG_CODENAMES[1]  # on for half the users (when the table has rollouts)
# A string flag whose variants are split 50/50 among signed-in users (when the table has
# typed variants), read with get_value().
STRING_FLAG = "BENCH_STRING_FLAG"
APPS_WITH_SETTINGS = ("users", "feature_flags", "notifications")


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- PostgreSQL ---------------------------------------------------------------------------


def start_database(stack: contextlib.ExitStack) -> str:
    """A database to benchmark on; its URL. Dropped or deleted when ``stack`` closes.

    With DATABASE_URL: a fresh database ``<name>_bench`` on that server (the operator's
    own database is never touched). Without: an embedded PostgreSQL in a temporary folder
    on a free port, with the durability settings of a real server (fsync on).
    """
    from fastapi_server.lib.database_url import database_name, with_database
    from init.bootstrap import create_database_if_missing, drop_database

    given = os.environ.get("DATABASE_URL")
    if given:
        url = with_database(given, database_name(given) + "_bench")
        asyncio.run(drop_database(url))
        asyncio.run(create_database_if_missing(url))
        stack.callback(lambda: asyncio.run(drop_database(url)))
        return url
    from init.local_postgres import LocalPostgres

    base_dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    stack.callback(shutil.rmtree, base_dir, ignore_errors=True)
    server = LocalPostgres(base_dir=base_dir, port=free_port())
    stack.callback(server.stop)
    server.start()
    return server.url("fastapi_server_bench")


def clone_database(stack: contextlib.ExitStack, url: str, suffix: str) -> str:
    """A copy of ``url``'s database, named with ``suffix``; its URL. Dropped when ``stack``
    closes. PostgreSQL copies a database only while nobody is connected to it."""
    from fastapi_server.lib.database_url import database_name, with_database
    from init.bootstrap import drop_database

    def quoted(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    name = database_name(url)
    clone = with_database(url, name + suffix)

    async def create() -> None:
        conn = await asyncpg.connect(with_database(url, "postgres"))
        try:
            await conn.execute(f"CREATE DATABASE {quoted(name + suffix)} TEMPLATE {quoted(name)}")
        finally:
            await conn.close()

    asyncio.run(drop_database(clone))
    asyncio.run(create())
    stack.callback(lambda: asyncio.run(drop_database(clone)))
    return clone


def bootstrap(url: str) -> None:
    """Create, migrate and seed the database the way ``manage.py`` does."""
    from init.bootstrap import bootstrap as run_bootstrap

    run_bootstrap(url)


# --- Seeds ----------------------------------------------------------------------------------


async def seed_flags(url: str) -> str | None:
    """Five flags (the first three active), as a psql administrator would add them.

    The second one is rolled out to half the users when the table has
    ``rollout_percentage``. Returns why the flags could not be made, or None.
    """
    from fastapi_server.lib.database_url import to_asyncpg_dsn

    conn = await asyncpg.connect(to_asyncpg_dsn(url))
    try:
        for n, codename in enumerate(FLAG_CODENAMES):
            await conn.execute(
                "INSERT INTO feature_flags (codename, is_active, label) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                codename,
                n < 3,
                f"Benchmark flag {n + 1}",
            )
        has_rollout = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'feature_flags' AND column_name = 'rollout_percentage'"
        )
        if has_rollout:
            await conn.execute(
                "UPDATE feature_flags SET rollout_percentage = 50 WHERE codename = $1",
                TARGETED_FLAG,
            )
        has_variants = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'feature_flags' AND column_name = 'variants'"
        )
        if has_variants:
            await conn.execute(
                "INSERT INTO feature_flags (codename, is_active, label, flag_type, variants, "
                "default_variant, off_variant, weights) VALUES ($1, true, 'Benchmark string "
                "flag', 'string', '{\"blue\": \"#00f\", \"red\": \"#f00\"}', 'blue', 'red', "
                '\'{"blue": 50, "red": 50}\') ON CONFLICT DO NOTHING',
                STRING_FLAG,
            )
    except asyncpg.PostgresError as exc:
        return f"cannot insert flags: {exc}"
    finally:
        await conn.close()
    return None


async def seed_user(url: str, email: str) -> tuple[uuid.UUID | None, str, str | None]:
    """A verified user made by the users app's test helper: (id, password, why not)."""
    try:
        helpers = importlib.import_module("fastapi_server.tests.helpers.users")
    except ImportError as exc:
        return None, "", f"users test helpers are missing ({exc})"
    from fastapi_server.config import Settings
    from fastapi_server.resources.database.databases import Databases
    from fastapi_server.resources.database.postgres import Database

    password: str = helpers.STRONG_PASSWORD
    database = Database.from_settings(Settings(database_url=url, db_pool_size=1), "bench:seed")
    try:
        async with database.transaction() as session:
            user = await helpers.make_user(Databases(session), email=email, password=password)
            user_id: uuid.UUID = user.id
    except Exception as exc:  # any failure of an app still in the making: reported, not fatal
        return None, "", f"cannot create the user: {type(exc).__name__}: {exc}"
    finally:
        await database.dispose()
    return user_id, password, None


async def copy_users(url: str, template_id: uuid.UUID, emails: Iterator[str]) -> int:
    """Copy the template user's row once per email with COPY (same password hash); count.

    Every column is copied from the template except ``id`` (new) and ``email``, so the
    rows are whatever the users app makes, and one password hash serves them all.
    """
    from fastapi_server.lib.database_url import to_asyncpg_dsn

    conn = await asyncpg.connect(to_asyncpg_dsn(url))
    try:
        template = await conn.fetchrow("SELECT * FROM users WHERE id = $1", template_id)
        if template is None:
            raise BenchError("the benchmark user vanished")
        columns = list(template.keys())
        values = list(template.values())
        id_at, email_at = columns.index("id"), columns.index("email")
        count = 0

        def records() -> Iterator[tuple[Any, ...]]:
            nonlocal count
            for email in emails:
                row = values.copy()
                row[id_at], row[email_at] = uuid.uuid4(), email
                count += 1
                yield tuple(row)

        await conn.copy_records_to_table("users", records=records(), columns=columns)
        # Measure the steady state, not the aftermath of a bulk load: VACUUM sets the
        # hint bits and the visibility map now (otherwise the first reads of each page
        # write them, and autovacuum works through the new rows during the rounds).
        await conn.execute("VACUUM (ANALYZE) users")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return count


async def seed_todos(url: str, user_id: uuid.UUID, count: int) -> uuid.UUID:
    """A project of ``user_id``'s (admin) with ``count`` todos of theirs in it; its id.

    The lists the benchmark reads: the user's todos and the project's, ``count`` long.
    """
    from fastapi_server.lib.database_url import to_asyncpg_dsn

    conn = await asyncpg.connect(to_asyncpg_dsn(url))
    try:
        project_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO projects (name, created_by, updated_by) "
            "VALUES ('Benchmark', $1, $1) RETURNING id",
            user_id,
        )
        await conn.execute(
            "INSERT INTO project_members (project_id, user_id, is_admin, created_by, updated_by) "
            "VALUES ($1, $2, true, $2, $2)",
            project_id,
            user_id,
        )
        await conn.execute(
            """
            INSERT INTO todos (title, owner, project_id, created_on, created_by, updated_by)
            SELECT md5(n::text), $1, $2, now() - make_interval(secs => n), $1, $1
            FROM generate_series(1, $3) AS n
            """,
            user_id,
            project_id,
            count,
        )
        await conn.execute("VACUUM (ANALYZE) projects, project_members, todos")
    finally:
        await conn.close()
    return project_id


async def load_todos(url: str, skip_user: uuid.UUID, users: int, projects: int, todos: int) -> int:
    """``todos`` more todos over ``users`` users (other than ``skip_user``) and ``projects``
    new projects, with one set-based INSERT each; the number of todos added.

    User number ``u`` belongs to project ``u % projects`` (an admin for the first of
    each); todo number ``t`` is user ``t % users``'s, in that user's project, one second
    older than the one before.
    """
    from fastapi_server.lib.database_url import to_asyncpg_dsn

    conn = await asyncpg.connect(to_asyncpg_dsn(url))
    try:
        async with conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE bench_users ON COMMIT DROP AS "
                "SELECT id, (row_number() OVER (ORDER BY id) - 1)::int AS n FROM users "
                "WHERE id <> $1 ORDER BY id LIMIT $2",
                skip_user,
                users,
            )
            found = await conn.fetchval("SELECT count(*) FROM bench_users")
            if found < users:
                raise BenchError(f"{users:,} users needed for the todos, {found:,} found")
            await conn.execute(
                "CREATE TEMP TABLE bench_projects ON COMMIT DROP AS "
                "SELECT gen_random_uuid() AS id, n FROM generate_series(0, $1 - 1) AS n",
                projects,
            )
            await conn.execute(
                "INSERT INTO projects (id, name) SELECT id, 'project ' || n FROM bench_projects"
            )
            await conn.execute(
                """
                INSERT INTO project_members (project_id, user_id, is_admin)
                SELECT p.id, u.id, u.n < $1
                FROM bench_users u JOIN bench_projects p ON p.n = u.n % $1
                """,
                projects,
            )
            status = await conn.execute(
                """
                INSERT INTO todos (title, owner, project_id, created_on, created_by, updated_by)
                SELECT md5(t::text), u.id, p.id, now() - make_interval(secs => t), u.id, u.id
                FROM generate_series(0, $1 - 1) AS t
                JOIN bench_users u ON u.n = t % $2
                JOIN bench_projects p ON p.n = u.n % $3
                """,
                todos,
                users,
                projects,
            )
        # The steady state, not the aftermath of a bulk load (see copy_users).
        await conn.execute("VACUUM (ANALYZE) projects, project_members, todos")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return int(status.split()[-1])


# --- Servers --------------------------------------------------------------------------------


def production_env(url: str) -> dict[str, str]:
    """The environment the API runs with in production, with fresh random secrets.

    Every ``*secret*`` setting of every app gets a random value: production refuses
    placeholders. Email is left to the separate delivery worker, as in production.
    """
    env = {
        "ENV": "production",
        "DATABASE_URL": url,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "NOTIFICATIONS_WORKER_IN_PROCESS": "false",
        # The load comes from one IP and a few emails: limits out of reach, so every
        # login is served and still pays for its rate-limit count, as in production.
        "USERS_RATE_LIMIT_PER_IP": "1000000000",
        "USERS_RATE_LIMIT_LOGIN_PER_EMAIL": "1000000000",
        # A run outlasts the 15-minute default: the token taken at the start serves to the end.
        "USERS_ACCESS_TOKEN_LIFETIME_SECONDS": str(6 * 3600),
    }
    for app in APPS_WITH_SETTINGS:
        try:
            module = importlib.import_module(f"fastapi_server.apps.{app}.settings")
        except ImportError:
            continue
        for value in vars(module).values():
            fields = getattr(value, "model_fields", None)
            config = getattr(value, "model_config", None)
            if not isinstance(fields, dict) or not isinstance(config, dict):
                continue
            prefix = str(config.get("env_prefix", ""))
            for name in fields:
                if "secret" in name:
                    env[(prefix + name).upper()] = secrets.token_urlsafe(48)
    return env


def clear_settings_caches() -> None:
    """Forget the settings read so far (``get_*_settings`` caches), after an env change."""
    modules = ["fastapi_server.config"]
    modules += [f"fastapi_server.apps.{app}.settings" for app in APPS_WITH_SETTINGS]
    for name in modules:
        module = sys.modules.get(name)
        for value in vars(module).values() if module else ():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


class Server:
    """A uvicorn master (and its workers) started like production; see ``command``."""

    def __init__(
        self,
        name: str,
        factory: str,
        env: Mapping[str, str],
        workers: int,
        log_dir: Path,
    ) -> None:
        self.name = name
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.command = [
            sys.executable, "-m", "uvicorn", factory, "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        ]  # fmt: skip
        self._others: list[int] = []  # the workers, once asked to stop
        self._terminated = False
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop it in order
            )

    def wait_ready(self, health_path: str, timeout: float = 60.0) -> None:
        """Wait until every worker finished its start-up and ``health_path`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            started = self.log_path.read_text(errors="replace").count("startup complete")
            if started >= self.workers and _status_of(self.url + health_path) == 200:
                return
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not start within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """The worker processes (the master itself when it serves alone)."""
        if self.workers == 1:
            return [self.process.pid]
        import psutil  # type: ignore[import-untyped]

        children = psutil.Process(self.process.pid).children()
        return sorted(child.pid for child in children if "spawn_main" in " ".join(child.cmdline()))

    def rss_mb(self) -> dict[int, float]:
        """Resident memory of each worker, in MB."""
        import psutil

        rss = {}
        for pid in self.worker_pids():
            with contextlib.suppress(psutil.Error):  # a worker that just exited: no figure
                rss[pid] = psutil.Process(pid).memory_info().rss / 2**20
        return rss

    def all_pids(self) -> list[int]:
        """The master and every process under it (to check that nothing is left)."""
        try:
            import psutil

            master = psutil.Process(self.process.pid)
            return [self.process.pid, *(c.pid for c in master.children(recursive=True))]
        except Exception:  # psutil missing or the master already gone
            return [self.process.pid]

    def cpu_seconds(self) -> float:
        """CPU time used so far by the master and its workers."""
        import psutil

        total = 0.0
        for pid in self.all_pids():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
        return total

    def terminate(self) -> None:
        """Ask uvicorn to stop (SIGTERM: a graceful stop); ``stop()`` waits for it.

        Only once: a second SIGTERM makes uvicorn skip its graceful shutdown.
        """
        if self.process.poll() is None and not self._terminated:
            self._terminated = True
            self._others = [pid for pid in self.all_pids() if pid != self.process.pid]
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful stop), then SIGKILL to whatever is left of it."""
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        _wait_gone(self._others, timeout=5)
        self._others = []


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait for ``pids`` to exit (e.g. multiprocessing's resource tracker); kill them after."""
    try:
        import psutil
    except ImportError:
        return
    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            processes.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()


def wait_idle(servers: list[Server], timeout: float = 60.0) -> float:
    """Wait until ``servers`` use under 5% of a core (queued work done); seconds waited.

    wrk stops sending when its interval ends, but requests it left queued (slow logins)
    still run: the next measurement must not pay for them.
    """
    started = time.monotonic()
    try:
        previous = sum(server.cpu_seconds() for server in servers)
    except ImportError:  # no psutil: a fixed pause instead
        time.sleep(1)
        return 1.0
    while time.monotonic() - started < timeout:
        time.sleep(0.2)
        current = sum(server.cpu_seconds() for server in servers)
        if current - previous < 0.2 * 0.05:
            break
        previous = current
    return time.monotonic() - started


def start_server(
    stack: contextlib.ExitStack,
    name: str,
    factory: str,
    env: Mapping[str, str],
    workers: int,
    log_dir: Path,
) -> Server:
    """Start a server whose stop is registered on ``stack``."""
    server = Server(name, factory, env, workers, log_dir)
    stack.callback(server.stop)
    return server


# --- Small HTTP client (stdlib only: the benchmark runs with the runtime requirements) ----


def _status_of(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 -- http://127.0.0.1
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def http_call(
    url: str,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One request: (status, body); status 0 when the server cannot be reached."""
    request = urllib.request.Request(  # noqa: S310 -- the callers pass http://127.0.0.1 URLs
        url, data=body, method=method, headers=dict(headers or {})
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""
