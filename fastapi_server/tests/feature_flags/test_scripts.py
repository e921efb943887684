"""The ops scripts, run as subprocesses like an operator would, on the test database."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from fastapi_server.apps.users.models import User
from fastapi_server.tests.helpers.processes import run_script
from fastapi_server.tests.helpers.users import auth_headers
from init.script import script_actor


async def _flag(engine: AsyncEngine, codename: str) -> dict[str, object] | None:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM feature_flags WHERE codename = :c"), {"c": codename}
        )
        row = result.mappings().first()
    return None if row is None else dict(row)


async def test_create_then_refuse_a_duplicate(engine: AsyncEngine, clean_database: str) -> None:
    created = run_script(
        "create_feature_flag.py", "FF_NEW", "--label", "New thing", "--description", "D", "--active"
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout == "created FF_NEW (active: True, label: 'New thing')\n"
    flag = await _flag(engine, "FF_NEW")
    assert flag is not None
    assert flag["is_active"] is True
    assert flag["description"] == "D"
    assert flag["created_by"] == script_actor()

    again = run_script("create_feature_flag.py", "FF_NEW", "--label", "Other")
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr == "error: A feature flag with this codename already exists.\n"
    assert (await _flag(engine, "FF_NEW")) == flag


async def test_create_is_off_by_default_and_refuses_bad_codenames(
    engine: AsyncEngine, clean_database: str
) -> None:
    quiet = run_script("create_feature_flag.py", "FF_QUIET")
    assert quiet.stdout == "created FF_QUIET (active: False, label: '')\n"
    bad = run_script("create_feature_flag.py", "bad name")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: codename: a codename is 1 to 100 characters")
    assert len(bad.stderr.splitlines()) == 1
    assert await _flag(engine, "bad name") is None
    reserved = run_script("create_feature_flag.py", "evaluate")
    assert reserved.returncode == 1
    assert reserved.stderr.startswith("error: codename: 'evaluate' is reserved")
    assert await _flag(engine, "evaluate") is None
    two_lines = run_script("create_feature_flag.py", "FF_LINES", "--label", "one\ntwo")
    assert two_lines.returncode == 1
    assert two_lines.stderr == "error: label: must be a single line\n"
    assert await _flag(engine, "FF_LINES") is None


async def test_toggle_prints_the_new_status_and_refuses_unknown_flags(
    engine: AsyncEngine, clean_database: str
) -> None:
    off = run_script("toggle_feature_flag.py", "FF_ENABLE_REGISTRATION")
    assert off.returncode == 0, off.stderr
    assert off.stdout == "FF_ENABLE_REGISTRATION new active status: False\n"
    on = run_script("toggle_feature_flag.py", "FF_ENABLE_REGISTRATION")
    assert on.stdout == "FF_ENABLE_REGISTRATION new active status: True\n"

    missing = run_script("toggle_feature_flag.py", "FF_NOPE")
    assert missing.returncode == 1
    assert missing.stderr == "error: No feature flag has this codename.\n"
    assert await _flag(engine, "FF_NOPE") is None


async def test_list_prints_a_table(engine: AsyncEngine, clean_database: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO feature_flags (codename, label, rollout_percentage, user_ids) "
                "VALUES ('FF_BETA', 'Beta', 10, ARRAY[gen_random_uuid(), gen_random_uuid()])"
            )
        )
    listed = run_script("list_feature_flags.py")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "codename                active  type     rollout  users  label",
        "FF_BETA                 False   boolean  10%      2      Beta",
        "FF_ENABLE_REGISTRATION  True    boolean  100%     0      Enable registration",
    ]


async def test_history_shows_api_script_and_raw_sql_changes_with_their_actors(
    committed_client: httpx.AsyncClient, committed_admin: User, engine: AsyncEngine
) -> None:
    headers = auth_headers(committed_admin)
    created = await committed_client.post(
        "/feature-flags", json={"codename": "FF_AUDITED"}, headers=headers
    )
    assert created.status_code == 201
    assert run_script("toggle_feature_flag.py", "FF_AUDITED").returncode == 0
    async with engine.begin() as conn:  # like psql: no actor set, the role is recorded
        await conn.execute(
            text("UPDATE feature_flags SET rollout_percentage = 50 WHERE codename = 'FF_AUDITED'")
        )
    history = await committed_client.get("/feature-flags/FF_AUDITED/history", headers=headers)
    assert [(row["action"], row["actor"]) for row in history.json()["results"]] == [
        ("updated", "postgres"),
        ("updated", script_actor()),
        ("created", committed_admin.email),
    ]
    flag = await _flag(engine, "FF_AUDITED")
    assert flag is not None
    assert flag["created_by"] == committed_admin.email
    assert flag["updated_by"] == "postgres"


async def test_create_a_string_flag_with_variants(engine: AsyncEngine, clean_database: str) -> None:
    created = run_script(
        "create_feature_flag.py", "FF_BUTTON_COLOUR", "--type", "string",
        "--variant", 'blue="#00f"', "--variant", 'red="#f00"',
        "--default", "blue", "--off", "red", "--weight", "blue=70", "--weight", "red=30",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert created.stdout.endswith(", string: blue, red)\n")
    flag = await _flag(engine, "FF_BUTTON_COLOUR")
    assert flag is not None
    assert flag["variants"] == {"blue": "#00f", "red": "#f00"}
    assert (flag["default_variant"], flag["off_variant"]) == ("blue", "red")
    assert flag["weights"] == {"blue": 70, "red": 30}

    unquoted = run_script(
        "create_feature_flag.py", "FF_X", "--type", "string", "--variant", "a=#00f"
    )
    assert unquoted.returncode == 1
    assert unquoted.stderr == "error: --variant 'a=#00f': '#00f' is not valid\n"
    inconsistent = run_script(
        "create_feature_flag.py", "FF_X", "--type", "integer", "--variant", "a=1",
        "--default", "a", "--off", "b",
    )  # fmt: skip
    assert inconsistent.returncode == 1
    assert inconsistent.stderr == "error: off_variant must name one of the variants\n"
    assert await _flag(engine, "FF_X") is None
