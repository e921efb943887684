"""Fixtures of the notifications tests: an SMTP catcher, fast worker settings, workers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from fastapi_server.apps.notifications import core
from fastapi_server.apps.notifications.settings import NotificationsSettings
from fastapi_server.apps.notifications.worker import DeliveryWorker
from fastapi_server.config import Settings
from fastapi_server.lib.database_url import to_asyncpg_dsn
from fastapi_server.lib.errors import AppError
from fastapi_server.main import create_app
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database
from fastapi_server.resources.http import APIRouter, DBs
from fastapi_server.tests.helpers.mail import SMTPCatcher


class RollbackPlease(AppError):
    code = "ROLLBACK_PLEASE"
    status_code = 409


# An endpoint of the tests only: queues a welcome email, then succeeds or fails.
mail_router = APIRouter()


@mail_router.post("/_test/mail")
async def queue_mail(dbs: DBs, to: str, fail: bool = False) -> dict[str, str]:
    message_id = await core.enqueue(
        dbs, template="welcome", to_email=to, to_name="Ada Lovelace", context={"first_name": "Ada"}
    )
    if fail:
        raise RollbackPlease()
    return {"id": str(message_id)}


@pytest.fixture
def smtp() -> Iterator[SMTPCatcher]:
    """A real SMTP server on a free port, for the duration of the test."""
    with SMTPCatcher() as catcher:
        yield catcher


def fast_settings(smtp_port: int, **overrides: Any) -> NotificationsSettings:
    """Worker settings for tests: SMTP on localhost, tiny backoff, short poll."""
    values: dict[str, Any] = {
        "transport": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_tls": "none",
        "smtp_timeout_seconds": 5,
        "from_email": "no-reply@platform.test",
        "from_name": "Platform Tests",
        "max_attempts": 50,
        "retry_base_seconds": 0.02,
        "retry_max_seconds": 0.2,
        "poll_seconds": 1,
        "lease_seconds": 30,
        "batch_size": 5,
    }
    return NotificationsSettings(**{**values, **overrides})


@pytest.fixture
def notifications_settings(smtp: SMTPCatcher) -> NotificationsSettings:
    return fast_settings(smtp.port)


@pytest.fixture
async def app(
    settings: Settings, notifications_settings: NotificationsSettings
) -> AsyncIterator[FastAPI]:
    """The API (lifespan running) whose in-process worker mails to the test's catcher."""
    application = create_app(settings)
    application.state.notifications_settings = notifications_settings
    application.include_router(mail_router)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def database(engine: AsyncEngine) -> Database:
    """A ``Database`` on the test engine, for committed transactions and workers."""
    return Database(engine)


@pytest.fixture
async def committed(database: Database, clean_database: str) -> Database:
    """Like ``database``, for tests that commit: the tables are emptied afterwards."""
    return database


WorkerFactory = Callable[..., DeliveryWorker]


@pytest.fixture
async def start_worker(
    database_url: str, engine: AsyncEngine, smtp: SMTPCatcher
) -> AsyncIterator[WorkerFactory]:
    """Start delivery workers (``run()`` as a task, own engine each); all stopped after."""
    running: list[tuple[DeliveryWorker, asyncio.Task[None], Database]] = []

    def start(settings: NotificationsSettings | None = None, **kwargs: Any) -> DeliveryWorker:
        own = Settings(database_url=database_url, db_pool_size=2, db_max_overflow=0)
        database = Database.from_settings(own, "test-worker")
        worker = DeliveryWorker(
            database, to_asyncpg_dsn(database_url), settings or fast_settings(smtp.port), **kwargs
        )
        running.append((worker, asyncio.create_task(worker.run()), database))
        return worker

    yield start
    for worker, _, _ in running:
        worker.stop()
    for _, task, database in running:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        await database.dispose()


async def enqueue_committed(
    database: Database, addresses: list[str], template: str = "welcome"
) -> list[uuid.UUID]:
    """Queue one message per address in one committed transaction."""
    contexts: dict[str, dict[str, Any]] = {
        "welcome": {"first_name": "Ada"},
        "registration_code": {"first_name": "Ada", "code": "424242", "expires_minutes": 10},
    }
    async with database.transaction() as session:
        dbs = Databases(session)
        return [
            await core.enqueue(
                dbs, template=template, to_email=address, to_name="Ada", context=contexts[template]
            )
            for address in addresses
        ]


async def outbox_row(database: Database, message_id: uuid.UUID) -> dict[str, Any]:
    """The committed outbox row, as a dict."""
    async with database.transaction() as session:
        row = await session.execute(
            text("SELECT * FROM notifications_outbox WHERE id = :id"), {"id": message_id}
        )
        return dict(row.mappings().one())
