"""The table as psql administrators see it: defaults, checks, audit columns, history, NOTIFY."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from fastapi_server.apps.feature_flags.schemas import RESERVED_CODENAMES
from fastapi_server.lib.database_url import to_asyncpg_dsn

ISSUE_INSERT = (
    "INSERT INTO feature_flags (codename, is_active, label) "
    "VALUES ('FF_ENABLE_REGISTRATION', True, 'Enable Registration');"
)


@pytest.fixture
async def psql(clean_database: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A plain connection, like psql's: autocommit, no actor set; data reset afterwards."""
    connection = await asyncpg.connect(to_asyncpg_dsn(clean_database))
    yield connection
    await connection.close()


async def _history(psql: asyncpg.Connection[Any], codename: str) -> list[asyncpg.Record]:
    return await psql.fetch(
        "SELECT action, actor, old_values, new_values FROM feature_flag_history "
        "WHERE codename = $1 ORDER BY id",
        codename,
    )


async def test_the_insert_from_the_docs_works_as_typed(psql: asyncpg.Connection[Any]) -> None:
    await psql.execute("DELETE FROM feature_flags WHERE codename = 'FF_ENABLE_REGISTRATION'")
    await psql.execute(ISSUE_INSERT)
    row = await psql.fetchrow(
        "SELECT * FROM feature_flags WHERE codename = 'FF_ENABLE_REGISTRATION'"
    )
    assert row is not None
    assert row["is_active"] is True
    assert row["label"] == "Enable Registration"
    assert row["description"] == ""
    assert row["user_ids"] == []
    assert row["rollout_percentage"] == 100
    assert row["created_by"] == row["updated_by"] == "postgres"
    assert row["created_on"] is not None
    assert row["updated_on"] is not None


async def test_is_active_defaults_to_false_in_the_database(psql: asyncpg.Connection[Any]) -> None:
    await psql.execute("INSERT INTO feature_flags (codename) VALUES ('FF_QUIET')")
    assert (
        await psql.fetchval("SELECT is_active FROM feature_flags WHERE codename = 'FF_QUIET'")
        is False
    )


async def test_raw_update_moves_updated_on_and_updated_by(psql: asyncpg.Connection[Any]) -> None:
    await psql.execute("INSERT INTO feature_flags (codename) VALUES ('FF_X')")
    before = await psql.fetchrow("SELECT * FROM feature_flags WHERE codename = 'FF_X'")
    async with psql.transaction():
        await psql.execute("SELECT set_config('app.actor', 'someone@example.org', true)")
        await psql.execute("UPDATE feature_flags SET is_active = true WHERE codename = 'FF_X'")
    after = await psql.fetchrow("SELECT * FROM feature_flags WHERE codename = 'FF_X'")
    assert before is not None
    assert after is not None
    assert after["updated_on"] > before["updated_on"]
    assert after["created_on"] == before["created_on"]
    assert after["created_by"] == "postgres"
    assert after["updated_by"] == "someone@example.org"


async def test_history_records_every_change_with_its_actor(psql: asyncpg.Connection[Any]) -> None:
    await psql.execute("INSERT INTO feature_flags (codename, label) VALUES ('FF_X', 'X')")
    async with psql.transaction():
        await psql.execute("SELECT set_config('app.actor', 'script:ops', true)")
        await psql.execute("UPDATE feature_flags SET is_active = true WHERE codename = 'FF_X'")
    # The actor was transaction-local: the next change on the same connection is the role's.
    await psql.execute("UPDATE feature_flags SET rollout_percentage = 5 WHERE codename = 'FF_X'")
    await psql.execute("UPDATE feature_flags SET label = label WHERE codename = 'FF_X'")  # no-op
    await psql.execute("DELETE FROM feature_flags WHERE codename = 'FF_X'")
    rows = await _history(psql, "FF_X")
    assert [(row["action"], row["actor"]) for row in rows] == [
        ("created", "postgres"),
        ("updated", "script:ops"),
        ("updated", "postgres"),
        ("deleted", "postgres"),
    ]
    created, activated, rolled_out, deleted = (
        (row["old_values"], row["new_values"]) for row in rows
    )
    assert created[0] is None
    assert '"is_active": false' in activated[0]
    assert '"is_active": true' in activated[1]
    assert '"rollout_percentage": 5' in rolled_out[1]
    assert deleted[1] is None


async def test_history_is_append_only(psql: asyncpg.Connection[Any]) -> None:
    await psql.execute("INSERT INTO feature_flags (codename) VALUES ('FF_X')")
    for statement in (
        "UPDATE feature_flag_history SET actor = 'nobody'",
        "DELETE FROM feature_flag_history",
        "TRUNCATE feature_flag_history",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await psql.execute(statement)
    assert len(await _history(psql, "FF_X")) == 1


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO feature_flags (codename) VALUES ('bad name')",
        "INSERT INTO feature_flags (codename) VALUES ('')",
        "INSERT INTO feature_flags (codename, rollout_percentage) VALUES ('FF_X', 101)",
        "INSERT INTO feature_flags (codename, rollout_percentage) VALUES ('FF_X', -1)",
    ],
)
async def test_checks_refuse_bad_rows(psql: asyncpg.Connection[Any], statement: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await psql.execute(statement)


async def test_the_database_refuses_the_reserved_codenames_too(
    psql: asyncpg.Connection[Any],
) -> None:
    for codename in sorted(RESERVED_CODENAMES):  # the API's list: both must agree
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await psql.execute("INSERT INTO feature_flags (codename) VALUES ($1)", codename)
        assert refused.value.constraint_name == "ck_feature_flags_codename_not_reserved"
    await psql.execute("INSERT INTO feature_flags (codename) VALUES ('Evaluate'), ('...')")


async def test_changes_notify_the_codename_on_commit(
    psql: asyncpg.Connection[Any], clean_database: str
) -> None:
    notices: asyncio.Queue[str] = asyncio.Queue()
    await psql.add_listener("feature_flags_changed", lambda *args: notices.put_nowait(args[3]))
    writer = await asyncpg.connect(to_asyncpg_dsn(clean_database))
    try:
        async with writer.transaction():
            await writer.execute("INSERT INTO feature_flags (codename) VALUES ('FF_X')")
            await asyncio.sleep(0.05)
            assert notices.empty(), "a notice before the commit"
        assert await asyncio.wait_for(notices.get(), 2) == "FF_X"
        await writer.execute("UPDATE feature_flags SET codename = 'FF_Y' WHERE codename = 'FF_X'")
        renamed = {await asyncio.wait_for(notices.get(), 2) for _ in range(2)}
        assert renamed == {"FF_X", "FF_Y"}  # the old name is gone, the new one is there
        await writer.execute("TRUNCATE feature_flags")
        assert await asyncio.wait_for(notices.get(), 2) == ""  # empty: reload everything
    finally:
        await writer.close()


async def test_the_documented_psql_statements_work_and_set_local_names_the_actor(
    psql: asyncpg.Connection[Any],
) -> None:
    await psql.execute(
        "INSERT INTO feature_flags (codename, label) VALUES ('FF_NEW_CHECKOUT', 'N')"
    )
    await psql.execute(
        "BEGIN; SET LOCAL app.actor = 'alice@example.org'; "
        "UPDATE feature_flags SET is_active = NOT is_active WHERE codename = 'FF_NEW_CHECKOUT'; "
        "COMMIT;"
    )
    await psql.execute(
        "UPDATE feature_flags SET rollout_percentage = 10 WHERE codename = 'FF_NEW_CHECKOUT'"
    )
    await psql.execute(
        "UPDATE feature_flags SET user_ids = array_append(user_ids, "
        "'3f8e2c1a-5b7d-4e9f-a2c4-6d8b0e1f3a57') WHERE codename = 'FF_NEW_CHECKOUT'"
    )
    row = await psql.fetchrow("SELECT * FROM feature_flags WHERE codename = 'FF_NEW_CHECKOUT'")
    assert row is not None
    assert row["is_active"] is True
    assert row["rollout_percentage"] == 10
    assert [str(user_id) for user_id in row["user_ids"]] == ["3f8e2c1a-5b7d-4e9f-a2c4-6d8b0e1f3a57"]
    await psql.execute("DELETE FROM feature_flags WHERE codename = 'FF_NEW_CHECKOUT'")
    actors = [row["actor"] for row in await _history(psql, "FF_NEW_CHECKOUT")]
    assert actors == ["postgres", "alice@example.org", "postgres", "postgres", "postgres"]
