"""The bootstrap and the run command: idempotent, on any server DATABASE_URL names."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from fastapi_server.lib.database_url import to_sqlalchemy_url, with_database
from fastapi_server.models import Base
from fastapi_server.tests.helpers.processes import REPO_ROOT, free_port, run_script, wait_for_http
from init.bootstrap import bootstrap, drop_database
from init.local_postgres import LocalPostgres


async def _row_counts(url: str) -> dict[str, int]:
    engine = create_async_engine(to_sqlalchemy_url(url))
    try:
        async with engine.connect() as conn:
            return {
                table.name: int(
                    (await conn.execute(text(f'SELECT count(*) FROM "{table.name}"'))).scalar_one()
                )
                for table in Base.metadata.sorted_tables
            } | {
                "alembic_version": int(
                    (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one()
                )
            }
    finally:
        await engine.dispose()


def test_bootstrap_twice_creates_nothing_twice(database_url: str) -> None:
    url = with_database(database_url, f"bootstrap_{free_port()}")
    try:
        bootstrap(url)  # creates the missing database, migrates, seeds
        first = asyncio.run(_row_counts(url))
        bootstrap(url)
        assert asyncio.run(_row_counts(url)) == first
        assert first["alembic_version"] == 1
    finally:
        asyncio.run(drop_database(url))


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve"],
        cwd=REPO_ROOT,
        env={**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


def _stop(process: subprocess.Popen[str], how: signal.Signals = signal.SIGTERM) -> str:
    process.send_signal(how)
    output, _ = process.communicate(timeout=30)
    return output


def test_run_command_migrates_and_serves_the_database_url_server(database_url: str) -> None:
    url = with_database(database_url, f"serve_{free_port()}")
    process, base = _serve({"DATABASE_URL": url})
    try:
        wait_for_http(f"{base}/_status", process=process)
        assert httpx.get(f"{base}/_ready").json()["status"] == "ready"
        assert httpx.get(f"{base}/docs").status_code == 200
        assert asyncio.run(_row_counts(url))["alembic_version"] == 1
    finally:
        output = _stop(process)
        asyncio.run(drop_database(url))
    assert process.returncode == 0, output
    assert "psql" in output


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_run_command_on_embedded_postgres_stops_it_cleanly(how: signal.Signals) -> None:
    base_dir = Path(tempfile.mkdtemp(prefix="fs-serve-"))
    pg_port = free_port()
    env = {"EMBEDDED_PG_DIR": str(base_dir), "EMBEDDED_PG_PORT": str(pg_port), "DATABASE_URL": ""}
    process, base = _serve(env)
    try:
        wait_for_http(f"{base}/_status", timeout=60, process=process)
        assert httpx.get(f"{base}/_ready").status_code == 200
    finally:
        output = _stop(process, how)
    assert process.returncode == 0, output
    assert f"127.0.0.1:{pg_port}" in output
    server = LocalPostgres(base_dir=base_dir, port=pg_port)
    assert not server.is_running(), "the embedded PostgreSQL is left running"

    # Data survives: the next start finds the migrated database.
    server.start()
    try:
        counts = asyncio.run(_row_counts(server.url()))
        assert counts["alembic_version"] == 1
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


@pytest.fixture
def fresh_embedded() -> Iterator[tuple[LocalPostgres, dict[str, str]]]:
    """A not-yet-created local cluster, and the environment that points the tools at it."""
    base_dir = Path(tempfile.mkdtemp(prefix="fs-tools-"))
    server = LocalPostgres(base_dir=base_dir, port=free_port())
    env = {
        **os.environ,
        "EMBEDDED_PG_DIR": str(base_dir),
        "EMBEDDED_PG_PORT": str(server.port),
        "DATABASE_URL": "",
    }
    try:
        yield server, env
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


def test_alembic_command_line_reaches_the_embedded_server_and_leaves_it_as_found(
    fresh_embedded: tuple[LocalPostgres, dict[str, str]],
) -> None:
    server, env = fresh_embedded
    alembic = str(Path(sys.executable).parent / "alembic")
    result = subprocess.run(
        [alembic, "upgrade", "head"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert not server.is_running(), "alembic started the server, so it must stop it"
    server.start()
    assert asyncio.run(_row_counts(server.url()))["alembic_version"] == 1


def test_a_script_on_a_fresh_checkout_gets_a_ready_embedded_database(
    fresh_embedded: tuple[LocalPostgres, dict[str, str]],
) -> None:
    server, env = fresh_embedded
    result = run_script("list_feature_flags.py", env=env)
    assert result.returncode == 0, result.stderr
    assert "FF_ENABLE_REGISTRATION" in result.stdout  # migrated and seeded first
    assert not server.is_running(), "the script started the server, so it must stop it"


def test_scripts_read_database_url_from_the_env_file(database_url: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DATABASE_URL={database_url}\n")
    untouched = tmp_path / "no-embedded-server-here"
    env = {**os.environ, "EMBEDDED_PG_DIR": str(untouched)}
    env.pop("DATABASE_URL")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "list_feature_flags.py")],
        cwd=tmp_path,  # settings read .env from the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "FF_ENABLE_REGISTRATION" in result.stdout
    assert not untouched.exists(), "the script started an embedded server instead"


def test_bootstrap_works_for_a_role_that_may_not_enter_the_postgres_database(
    database_url: str,
) -> None:
    """Managed servers often let an application role into its own database only."""
    name = f"owned_{free_port()}"
    admin = with_database(database_url, "postgres")

    async def as_admin(*statements: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(
        as_admin(
            f"CREATE ROLE {name} LOGIN",
            f"CREATE DATABASE {name} OWNER {name}",
            "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC",
        )
    )
    try:
        owner_url = with_database(database_url, name).replace("postgres@", f"{name}@", 1)
        bootstrap(owner_url)
        assert asyncio.run(_row_counts(owner_url))["alembic_version"] == 1
    finally:
        asyncio.run(
            as_admin(
                "GRANT CONNECT ON DATABASE postgres TO PUBLIC",
                f"DROP DATABASE {name} WITH (FORCE)",
                f"DROP ROLE {name}",
            )
        )
