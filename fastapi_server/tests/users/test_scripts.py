"""The ops scripts, run as an ops person would: subprocesses from the repository root."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from fastapi_server.apps.users.passwords import verify_password_sync
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database
from fastapi_server.tests.helpers.processes import REPO_ROOT, run_script
from fastapi_server.tests.helpers.users import STRONG_PASSWORD, make_user

NEW_PASSWORD = "Ops-Chosen-Pass-31"


@pytest.fixture
async def locked_user(engine: AsyncEngine, clean_database: str) -> str:
    """An inactive, locked-out user committed for real (the scripts are other processes)."""
    async with Database(engine).transaction() as session:
        user = await make_user(Databases(session), email="Locked@Example.org")
        await session.execute(
            text(
                "UPDATE users SET is_active = false, login_failed_count = 7, "
                "locked_until = now() + interval '1 hour' WHERE id = :id"
            ),
            {"id": user.id},
        )
    return "locked@example.org"


async def _row(engine: AsyncEngine, email: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM users WHERE lower(email) = lower(:email)"), {"email": email}
        )
        row = result.mappings().one_or_none()
    return None if row is None else dict(row)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    "script", ["activate_user.py", "reset_user_password.py", "create_superuser.py"]
)
def test_help(script: str) -> None:
    result = run_script(script, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout
    assert "email" in result.stdout


@pytest.mark.parametrize(
    "script", ["activate_user.py", "reset_user_password.py", "create_superuser.py"]
)
def test_scripts_reach_the_database_only_through_core(script: str) -> None:
    """Rules live in core: a script hands ``ctx.dbs`` to core, never queries it itself."""
    tree = ast.parse((REPO_ROOT / "scripts" / script).read_text(encoding="utf-8"))
    direct = [
        f"line {node.lineno}: ctx.dbs.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "dbs"
    ]
    assert direct == []


async def test_activate_user_reactivates_and_clears_the_lock(
    engine: AsyncEngine, locked_user: str
) -> None:
    unknown = run_script("activate_user.py", "nobody@example.org")
    assert "nobody@example.org" in _one_error_line(unknown)

    result = run_script("activate_user.py", "LOCKED@example.org")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "activated Locked@Example.org: active, failed logins cleared, lockout lifted "
        "(was inactive, 7 failed logins)"
    )
    row = await _row(engine, locked_user)
    assert row is not None
    assert row["is_active"] is True
    assert row["login_failed_count"] == 0
    assert row["locked_until"] is None
    assert row["deactivated_on"] is None


async def test_reset_user_password_checks_the_policy_and_reactivates(
    engine: AsyncEngine, locked_user: str
) -> None:
    before = await _row(engine, locked_user)
    assert before is not None
    weak = run_script("reset_user_password.py", locked_user, env={"NEW_PASSWORD": "password"})
    assert "NO_UPPERCASE" in _one_error_line(weak)
    unknown = run_script(
        "reset_user_password.py", "nobody@example.org", env={"NEW_PASSWORD": NEW_PASSWORD}
    )
    assert "nobody@example.org" in _one_error_line(unknown)
    no_terminal = run_script("reset_user_password.py", locked_user, input="")  # no prompt answer
    assert no_terminal.returncode == 1
    assert "error: no password: set NEW_PASSWORD" in no_terminal.stderr
    assert await _row(engine, locked_user) == before  # nothing changed

    result = run_script("reset_user_password.py", locked_user, env={"NEW_PASSWORD": NEW_PASSWORD})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "password of Locked@Example.org changed; account active, earlier tokens revoked"
    )
    row = await _row(engine, locked_user)
    assert row is not None
    assert row["is_active"] is True
    assert row["locked_until"] is None
    assert row["token_version"] > before["token_version"]
    assert verify_password_sync(NEW_PASSWORD, row["hashed_password"])[0]
    assert not verify_password_sync(STRONG_PASSWORD, row["hashed_password"])[0]


async def test_reset_user_password_warns_about_a_password_in_its_arguments(
    engine: AsyncEngine, locked_user: str
) -> None:
    result = run_script("reset_user_password.py", locked_user, NEW_PASSWORD)
    assert result.returncode == 0, result.stderr
    assert "warning: a password on the command line" in result.stderr
    row = await _row(engine, locked_user)
    assert row is not None
    assert verify_password_sync(NEW_PASSWORD, row["hashed_password"])[0]


async def test_create_superuser_from_the_environment(
    engine: AsyncEngine, clean_database: str
) -> None:
    weak = run_script("create_superuser.py", "root@example.org", env={"SUPERUSER_PASSWORD": "x"})
    assert "TOO_SHORT" in _one_error_line(weak)
    assert await _row(engine, "root@example.org") is None

    env = {"SUPERUSER_PASSWORD": NEW_PASSWORD}
    created = run_script("create_superuser.py", "root@example.org", "--first-name", "Root", env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == (
        "created superuser root@example.org (active, verified, superuser)"
    )
    row = await _row(engine, "root@example.org")
    assert row is not None
    assert (row["is_active"], row["is_verified"], row["is_superuser"]) == (True, True, True)
    assert row["first_name"] == "Root"
    assert verify_password_sync(NEW_PASSWORD, row["hashed_password"])[0]

    # Again, as automation would at every deploy: nothing to change, nobody logged out.
    again = run_script("create_superuser.py", "ROOT@example.org", env=env)
    assert (
        again.stdout.strip() == "updated superuser root@example.org (active, verified, superuser)"
    )
    after = await _row(engine, "root@example.org")
    assert after is not None
    assert after["token_version"] == row["token_version"]
    assert after["hashed_password"] == row["hashed_password"]


async def test_create_superuser_promotes_an_existing_user(
    engine: AsyncEngine, clean_database: str
) -> None:
    async with Database(engine).transaction() as session:
        await make_user(Databases(session), email="plain@example.org", verified=False)
    env = {"SUPERUSER_PASSWORD": NEW_PASSWORD}
    result = run_script("create_superuser.py", "plain@example.org", env=env)
    assert result.returncode == 0, result.stderr
    row = await _row(engine, "plain@example.org")
    assert row is not None
    assert (row["is_verified"], row["is_superuser"], row["first_name"]) == (True, True, "Ada")
    assert verify_password_sync(NEW_PASSWORD, row["hashed_password"])[0]


def _prompted(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """The script with no terminal (new session): getpass falls back to reading stdin."""
    env = {key: value for key, value in os.environ.items() if key != "SUPERUSER_PASSWORD"}
    return subprocess.run(
        [sys.executable, "scripts/create_superuser.py", *args],
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )


async def test_create_superuser_asks_the_password_twice(
    engine: AsyncEngine, clean_database: str
) -> None:
    mismatch = _prompted("asked@example.org", stdin=f"{NEW_PASSWORD}\nsomething-else\n")
    assert mismatch.returncode == 1
    assert "do not match" in mismatch.stderr
    assert await _row(engine, "asked@example.org") is None

    result = _prompted("asked@example.org", stdin=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert result.returncode == 0, result.stderr
    assert "Password:" in result.stderr  # the prompt, not the password, is echoed
    assert NEW_PASSWORD not in result.stdout + result.stderr
    row = await _row(engine, "asked@example.org")
    assert row is not None
    assert row["is_superuser"] is True
