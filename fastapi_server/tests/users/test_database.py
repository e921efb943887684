"""The users app's data layer (``database/postgres.py``) on the real database."""

from __future__ import annotations

from datetime import timedelta

from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.users import make_user


async def test_an_email_is_found_whatever_its_case(dbs: Databases) -> None:
    ada = await make_user(dbs, email="Ada.Lovelace@Example.org")
    found = await dbs.users.get_by_email("ada.lovelace@EXAMPLE.ORG")
    assert found is not None
    assert found.id == ada.id
    assert await dbs.users.get_by_email("ada@example.org") is None


async def test_inserting_an_unverified_user_never_touches_an_existing_account(
    dbs: Databases,
) -> None:
    values = {"first_name": "Ada", "last_name": "L", "hashed_password": "h1"}
    first = await dbs.users.insert_unverified(email="new@example.org", **values)
    assert first is not None
    again = await dbs.users.insert_unverified(
        email="NEW@example.org", first_name="Augusta", last_name="King", hashed_password="h2"
    )
    assert again is None  # the email (in any case) has an account already
    user = await dbs.users.get(first)
    assert user is not None
    assert (user.first_name, user.hashed_password, user.token_version) == ("Ada", "h1", 0)


async def test_failures_lock_from_the_limit_on_doubling_up_to_the_cap(dbs: Databases) -> None:
    user = await make_user(dbs)
    now = await dbs.users.now()
    limits = {"max_failures": 2, "lockout_seconds": 10, "cap_seconds": 15, "decay_seconds": 900}
    first = await dbs.users.record_login_failure(user.id, **limits)
    second = await dbs.users.record_login_failure(user.id, **limits)
    third = await dbs.users.record_login_failure(user.id, **limits)
    assert first == (1, None)
    assert second == (2, now + timedelta(seconds=10))
    assert third == (3, now + timedelta(seconds=15))  # 20 s, capped
