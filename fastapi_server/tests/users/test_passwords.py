"""Password hashing and policy: argon2id, legacy bcrypt, long passwords, off the loop."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

import bcrypt
import httpx
import pytest

from fastapi_server.apps.notifications.settings import NotificationsSettings
from fastapi_server.apps.users import passwords
from fastapi_server.apps.users.settings import UsersSettings, default_hashing_threads
from fastapi_server.config import Settings
from fastapi_server.main import create_app
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.users import STRONG_PASSWORD, make_user
from fastapi_server.tests.users.conftest import FAST_HASHING, UsersEnv
from fastapi_server.tests.users.flows import login, register


def _legacy_bcrypt(password: str) -> str:
    """A hash as the old system made it (bcrypt looked at the first 72 bytes only)."""
    return bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()


async def test_a_legacy_bcrypt_hash_verifies_and_is_rehashed_to_argon2_at_login(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    password = "Legacy-Pass-2019"
    user = await make_user(dbs, email="old@example.org")
    await dbs.users.save(user, hashed_password=_legacy_bcrypt(password))
    await dbs.session.commit()
    assert (await login(client, "old@example.org", "Wrong-Pass-2019")).status_code == 400
    assert (await login(client, "old@example.org", password)).status_code == 200
    user_after = await dbs.users.get_by_email("old@example.org")
    assert user_after is not None
    assert user_after.hashed_password.startswith("$argon2id$")
    assert (await login(client, "old@example.org", password)).status_code == 200


async def test_passwords_longer_than_72_bytes_never_crash_on_bcrypt_hashes(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    long_password = "Ünïcödé-Pässwörd-" * 6  # ~150 bytes of UTF-8, cut mid-character at 72
    user = await make_user(dbs, email="long@example.org")
    await dbs.users.save(user, hashed_password=_legacy_bcrypt(long_password))
    await dbs.session.commit()
    assert (await login(client, "long@example.org", "x" * 500)).status_code == 400
    assert (await login(client, "long@example.org", long_password)).status_code == 200
    # Rehashed from the whole password, not its first 72 bytes.
    rehashed = await dbs.users.get_by_email("long@example.org")
    assert rehashed is not None
    assert passwords.verify_password_sync(long_password, rehashed.hashed_password)[0]
    assert not passwords.verify_password_sync(
        long_password.encode()[:72].decode(errors="ignore"), rehashed.hashed_password
    )[0]


async def test_a_nul_byte_never_crashes_a_bcrypt_verify(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    user = await make_user(dbs, email="old@example.org")
    await dbs.users.save(user, hashed_password=_legacy_bcrypt("Legacy-Pass-2019"))
    await dbs.session.commit()
    response = await login(client, "old@example.org", "Legacy\x00Pass-2019")
    assert response.status_code == 400
    assert response.json()["detail"]["code"] == "LOGIN_BAD_CREDENTIALS"


async def test_garbage_in_the_hash_column_is_a_failed_login(
    client: httpx.AsyncClient, dbs: Databases
) -> None:
    user = await make_user(dbs, email="broken@example.org")
    await dbs.users.save(user, hashed_password="not-a-hash")
    await dbs.session.commit()
    response = await login(client, "broken@example.org")
    assert response.status_code == 400


def test_production_defaults_are_argon2id_with_one_lane_and_owasp_costs() -> None:
    defaults = UsersSettings(_env_file=None, _env_prefix="UNSET_")  # not the tests' cheap ones
    assert (defaults.argon2_time_cost, defaults.argon2_memory_kib) == (2, 19456)
    assert defaults.argon2_parallelism == 1  # one core per hash, never all of them
    hashed = passwords.crypt_context(defaults).hash("Correct-Horse-42")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert defaults.hashing_threads == default_hashing_threads(os.cpu_count())


@pytest.mark.parametrize(("cpus", "threads"), [(None, 1), (1, 1), (2, 1), (3, 2), (5, 4), (64, 4)])
def test_hashing_threads_leave_a_core_to_the_event_loop(cpus: int | None, threads: int) -> None:
    assert default_hashing_threads(cpus) == threads


@pytest.mark.parametrize(
    "old_parameters",
    [
        {"ARGON2_PARALLELISM": "4"},  # the former default
        {"ARGON2_TIME_COST": "2"},
        {"ARGON2_MEMORY_KIB": "2048"},
    ],
)
async def test_argon2_hashes_with_other_parameters_verify_and_are_rehashed(
    client: httpx.AsyncClient, dbs: Databases, users_env: UsersEnv, old_parameters: dict[str, str]
) -> None:
    users_env(**old_parameters)
    old_hash = passwords.hash_password_sync(STRONG_PASSWORD)
    users_env(**{name: FAST_HASHING[f"USERS_{name}"] for name in old_parameters})
    user = await make_user(dbs, email="old@example.org")
    await dbs.users.save(user, hashed_password=old_hash)
    await dbs.session.commit()
    assert (await login(client, "old@example.org")).status_code == 200
    rehashed = await dbs.users.get_by_email("old@example.org")
    assert rehashed is not None
    assert rehashed.hashed_password.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert passwords.verify_password_sync(STRONG_PASSWORD, rehashed.hashed_password) == (
        True,
        None,
    )


async def test_hashing_does_not_block_the_event_loop(users_env: UsersEnv) -> None:
    users_env(ARGON2_TIME_COST="2", ARGON2_MEMORY_KIB="19456", ARGON2_PARALLELISM="1")
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    hashed = await asyncio.gather(*(passwords.hash_password("Correct-Horse-42") for _ in range(2)))
    done.set()
    await task
    assert all(h.startswith("$argon2id$v=19$m=19456,t=2,p=1$") for h in hashed)
    assert ticks >= 10  # the loop kept running while two production-strength hashes ran


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "TOO_SHORT"),
        ("Aa1!aaa", "TOO_SHORT"),
        ("Aa1!" + "a" * 125, "TOO_LONG"),
        ("aaaa1!aa", "NO_UPPERCASE"),
        ("AAAA1!AA", "NO_LOWERCASE"),
        ("Aaaaa!aa", "NO_NUMBER"),
        ("Aaaaa1aa", "NO_SPECIAL_CHAR"),
        ("PASSWORD1!".capitalize(), "TOO_COMMON"),
        ("Qwerty123!", "TOO_COMMON"),
        ("1qaz@WSX", "TOO_COMMON"),
        ("Welcome2025!", "TOO_COMMON"),
        ("Aa1!aaaa", None),
        ("Aa1!" + "a" * 124, None),
        ("Zürich Straße 9", None),  # a space counts as a special character
    ],
)
def test_password_policy(password: str, reason: str | None) -> None:
    assert passwords.password_problem(password) == reason


def test_the_shipped_common_list_is_loaded() -> None:
    common = passwords.common_passwords(UsersSettings(_env_file=None).common_passwords_file)
    assert len(common) > 10_000
    assert {"password1!", "p@ssw0rd", "letmein123!"} <= common
    assert all(entry == entry.lower() for entry in common)


async def test_the_common_list_is_read_at_start_up_not_in_a_request(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords.common_passwords.cache_clear()
    app = create_app(settings)
    app.state.notifications_settings = NotificationsSettings(worker_in_process=False)
    async with app.router.lifespan_context(app):

        def no_file_io_now(*args: object, **kwargs: object) -> str:
            raise AssertionError("a request read a file on the event loop")

        monkeypatch.setattr(Path, "read_text", no_file_io_now)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await register(http, "weak@example.org", password="Password123!")
    assert response.status_code == 400
    assert response.json()["detail"]["reason"] == "TOO_COMMON"


def _own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(sys.platform != "linux", reason="threads have a niceness of their own on Linux")
async def test_hashing_threads_yield_the_cpu_to_request_handling(users_env: UsersEnv) -> None:
    users_env(HASHING_NICENESS="7", HASHING_THREADS="3")
    loop = asyncio.get_running_loop()
    before = _own_niceness()
    hashing = await loop.run_in_executor(passwords._hashing_executor(), _own_niceness)
    assert hashing == min(19, before + 7)
    assert _own_niceness() == before  # the event loop's thread keeps its priority
    assert passwords.verify_password_sync(
        STRONG_PASSWORD, await passwords.hash_password(STRONG_PASSWORD)
    )[0]
