"""Password hashing (passlib ``CryptContext``: argon2id, legacy bcrypt) and the policy.

Hashing is slow on purpose, so it runs in a small dedicated thread pool, never on the
event loop: a burst of logins keeps other requests flowing, and at most
``USERS_HASHING_THREADS`` argon2 hashes hold their memory at once. Work that hashes
takes a ``hashing_turn()`` first, before it touches the database, so requests queued
behind the hashing threads wait without holding a pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import string
import sys
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from weakref import WeakKeyDictionary

from passlib.context import CryptContext
from passlib.utils import MAX_PASSWORD_SIZE

from fastapi_server.apps.users.errors import HashingBusy
from fastapi_server.apps.users.settings import UsersSettings, get_users_settings

MAX_LENGTH = 128
BCRYPT_MAX_BYTES = 72  # what bcrypt (and the old system) ever looked at
MAX_PASSWORD_BYTES = MAX_PASSWORD_SIZE  # passlib refuses longer (PasswordSizeError)
_STAND_IN = "stand-in for a password no hash can match"
_SPECIAL = set(string.punctuation) | {" "}
# Starts the stored value of an account without a usable password (a contested
# registration, verified before its owner chose one): no password matches it.
UNUSABLE_PREFIX = "!unusable:"


@lru_cache
def _context(time_cost: int, memory_kib: int, parallelism: int) -> CryptContext:
    return CryptContext(
        schemes=["argon2", "bcrypt"],
        deprecated=["bcrypt"],
        argon2__type="ID",
        argon2__rounds=time_cost,
        argon2__memory_cost=memory_kib,
        argon2__parallelism=parallelism,
    )


def crypt_context(settings: UsersSettings | None = None) -> CryptContext:
    """The CryptContext for the current argon2 settings (argon2id new, bcrypt verify-only)."""
    settings = settings or get_users_settings()
    return _context(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )


@lru_cache
def _executor(threads: int, niceness: int = 0) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=threads,
        thread_name_prefix="password-hash",
        initializer=yield_to_requests,
        initargs=(niceness,),
    )


def yield_to_requests(niceness: int) -> None:
    """Lower this hashing thread's priority (Linux schedules threads one by one, and raising
    one's own niceness needs no privilege); elsewhere threads keep the process's."""
    if niceness and sys.platform == "linux":
        with contextlib.suppress(OSError):
            current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), current + niceness)


def _hashing_executor() -> ThreadPoolExecutor:
    settings = get_users_settings()
    return _executor(settings.hashing_threads, settings.hashing_niceness)


# One semaphore per event loop (and thread count): asyncio primitives belong to a loop.
_turns: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = (
    WeakKeyDictionary()
)


@asynccontextmanager
async def hashing_turn() -> AsyncIterator[None]:
    """Wait until one of the ``USERS_HASHING_THREADS`` hashing threads is ours, at most
    ``USERS_HASHING_QUEUE_TIMEOUT_SECONDS``: past it, ``HashingBusy`` (503), so a storm
    of logins is answered rather than queued without end.

    Take it before the first query of anything that hashes: the wait for a hashing
    thread then happens without a database connection, so a burst of logins cannot
    empty the pool for other requests. Holders hash one password at a time.
    """
    settings = get_users_settings()
    threads = settings.hashing_threads
    per_count = _turns.setdefault(asyncio.get_running_loop(), {})
    semaphore = per_count.setdefault(threads, asyncio.Semaphore(threads))
    try:
        async with asyncio.timeout(settings.hashing_queue_timeout_seconds):
            await semaphore.acquire()
    except TimeoutError:
        raise HashingBusy(retry_after=math.ceil(settings.hashing_queue_timeout_seconds)) from None
    try:
        yield
    finally:
        semaphore.release()


def hash_password_sync(password: str) -> str:
    """The argon2id hash of ``password`` (blocking: prefer ``hash_password``)."""
    hashed: str = crypt_context().hash(password)
    return hashed


def _secret_for(scheme: str, password: str) -> str | bytes | None:
    """What ``scheme`` verifies for ``password``; None when no stored hash can match it.

    A bcrypt hash only ever covered the first 72 bytes of the password (bcrypt >= 5
    raises on longer input), and bcrypt refuses NUL bytes. passlib refuses passwords
    over ``MAX_PASSWORD_BYTES``; unpaired surrogates have no UTF-8 form.
    """
    try:
        encoded = password.encode()
    except UnicodeEncodeError:
        return None
    if len(encoded) > MAX_PASSWORD_BYTES:
        return None
    if scheme != "bcrypt":
        return password
    head = encoded[:BCRYPT_MAX_BYTES]
    return None if b"\0" in head else head


def verify_password_sync(password: str, hashed: str) -> tuple[bool, str | None]:
    """``(matches, new_hash)``; ``new_hash`` is set when the stored hash is outdated
    (bcrypt, or argon2 with other parameters than the settings').

    A password no hash can match (too long for passlib, a NUL for bcrypt, not UTF-8)
    does not match after the same work: a stand-in is verified against ``hashed``.
    """
    context = crypt_context()
    if hashed.startswith(UNUSABLE_PREFIX):
        context.verify(_STAND_IN, dummy_hash())  # the work of a real verify
        return False, None
    try:
        scheme = context.identify(hashed)
    except ValueError:
        scheme = None
    if scheme is None:  # not a hash we know (e.g. a value typed into the column by hand)
        return False, None
    secret = _secret_for(scheme, password)
    if secret is None:
        context.verify(_STAND_IN, hashed)  # the same work, whatever it answers
        return False, None
    if scheme != "bcrypt":
        matches, new_hash = context.verify_and_update(secret, hashed)
        return bool(matches), new_hash
    if not context.verify(secret, hashed):
        return False, None
    return True, context.hash(password)  # the whole password, not its first 72 bytes


async def hash_password(password: str) -> str:
    """Hash in the hashing thread pool."""
    loop = asyncio.get_running_loop()
    executor = _hashing_executor()
    return await loop.run_in_executor(executor, hash_password_sync, password)


async def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """Verify in the hashing thread pool; see ``verify_password_sync``."""
    loop = asyncio.get_running_loop()
    executor = _hashing_executor()
    return await loop.run_in_executor(executor, verify_password_sync, password, hashed)


@lru_cache
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    hashed: str = _context(time_cost, memory_kib, parallelism).hash("not a password of anyone")
    return hashed


def dummy_hash() -> str:
    """A hash with the current parameters, verified for unknown emails (same work)."""
    settings = get_users_settings()
    return _dummy_hash(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )


async def burn_a_verify(password: str) -> None:
    """Spend what a real verify costs, so unknown emails answer in the same time."""
    loop = asyncio.get_running_loop()
    executor = _hashing_executor()
    hashed = await loop.run_in_executor(executor, dummy_hash)
    await verify_password(password, hashed)


@lru_cache
def common_passwords(path: Path) -> frozenset[str]:
    """The lowercased entries of a common-passwords file (one a line, ``#`` comments).

    Read once per path; the users lifespan reads the configured one at start-up, so
    requests never touch the file.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


def password_problem(password: str, settings: UsersSettings | None = None) -> str | None:
    """The first policy rule ``password`` breaks (a reason code), or None when it passes.

    Codes: TOO_SHORT (under ``USERS_PASSWORD_MIN_LENGTH``, 8), TOO_LONG (over 128),
    NO_UPPERCASE, NO_LOWERCASE, NO_NUMBER, NO_SPECIAL_CHAR, TOO_COMMON.
    """
    settings = settings or get_users_settings()
    checks = (
        ("TOO_SHORT", len(password) >= settings.password_min_length),
        ("TOO_LONG", len(password) <= MAX_LENGTH),
        ("NO_UPPERCASE", any(char.isupper() for char in password)),
        ("NO_LOWERCASE", any(char.islower() for char in password)),
        ("NO_NUMBER", any(char.isdigit() for char in password)),
        ("NO_SPECIAL_CHAR", any(char in _SPECIAL or not char.isalnum() for char in password)),
    )
    for reason, passes in checks:
        if not passes:
            return reason
    if password.lower() in common_passwords(settings.common_passwords_file):
        return "TOO_COMMON"
    return None
