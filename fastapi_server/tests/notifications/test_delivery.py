"""Requests that queue email, delivered by the API's in-process worker to a real SMTP server."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from fastapi_server.apps.notifications.lifespan import lifespan as notifications_lifespan
from fastapi_server.apps.notifications.settings import NotificationsSettings
from fastapi_server.apps.notifications.transports import ConsoleTransportInProduction
from fastapi_server.config import Settings, get_settings
from fastapi_server.main import create_app
from fastapi_server.resources.database.postgres import Database
from fastapi_server.tests.helpers.mail import SMTPCatcher, html_body, text_body
from fastapi_server.tests.helpers.waiting import eventually
from fastapi_server.tests.notifications.conftest import outbox_row


async def test_committed_request_is_emailed_with_its_outbox_id(
    committed_client: httpx.AsyncClient, smtp: SMTPCatcher, database: Database
) -> None:
    response = await committed_client.post("/_test/mail", params={"to": "ada@example.com"})
    assert response.status_code == 200
    message_id = uuid.UUID(response.json()["id"])

    email = await smtp.wait_for("ada@example.com")
    assert email["Message-ID"] == f"<{message_id}@platform.test>"
    assert email["From"] == "Platform Tests <no-reply@platform.test>"
    assert email["To"] == "Ada Lovelace <ada@example.com>"
    assert email["Subject"] == "Welcome to FastAPI platform"
    assert "Hello Ada," in text_body(email)
    assert "Hello Ada," in html_body(email)
    assert smtp.envelopes[-1].rcpt_tos == ("ada@example.com",)

    async def recorded() -> bool:
        return bool((await outbox_row(database, message_id))["status"] == "sent")

    await eventually(recorded, what="the row marked sent")
    row = await outbox_row(database, message_id)
    assert row["attempts"] == 1
    assert row["sent_on"] is not None
    assert row["last_error"] is None


async def test_rolled_back_request_sends_nothing(
    committed_client: httpx.AsyncClient, smtp: SMTPCatcher
) -> None:
    failed = await committed_client.post(
        "/_test/mail", params={"to": "rolled-back@example.com", "fail": "true"}
    )
    assert failed.status_code == 409
    # A later committed message arrives; the rolled-back one, queued before it, never does.
    ok = await committed_client.post("/_test/mail", params={"to": "committed@example.com"})
    assert ok.status_code == 200
    await smtp.wait_for("committed@example.com")

    assert smtp.to("rolled-back@example.com") == []
    assert len(smtp.messages) == 1


async def test_mail_server_down_request_succeeds_and_mail_arrives_once_it_is_back(
    committed_client: httpx.AsyncClient, smtp: SMTPCatcher, database: Database
) -> None:
    smtp.stop()
    response = await committed_client.post("/_test/mail", params={"to": "patient@example.com"})
    assert response.status_code == 200
    message_id = uuid.UUID(response.json()["id"])

    async def retried_twice() -> bool:
        row = await outbox_row(database, message_id)
        return bool(row["status"] == "pending" and row["attempts"] >= 2)

    await eventually(retried_twice, what="two failed attempts")
    row = await outbox_row(database, message_id)
    assert "Connect" in row["last_error"] or "refused" in row["last_error"]

    smtp.start()
    email = await smtp.wait_for("patient@example.com")
    assert email["Message-ID"] == f"<{message_id}@platform.test>"

    async def sent() -> bool:
        return bool((await outbox_row(database, message_id))["status"] == "sent")

    await eventually(sent, what="the row marked sent")
    assert len(smtp.messages) == 1


async def test_in_process_worker_runs_by_default(app: FastAPI) -> None:
    worker = app.state.notifications_worker
    assert not worker.stopping

    async def listening() -> bool:
        return bool(worker.listening)

    await eventually(listening, what="the worker to LISTEN")


async def test_in_process_worker_can_be_turned_off(
    settings: Settings, notifications_settings: NotificationsSettings
) -> None:
    application = create_app(settings)
    application.state.notifications_settings = notifications_settings.model_copy(
        update={"worker_in_process": False}
    )
    async with application.router.lifespan_context(application):
        assert not hasattr(application.state, "notifications_worker")


async def _start_notifications(
    env: str, settings: NotificationsSettings, engine: AsyncEngine
) -> bool:
    """Run the notifications lifespan alone; True if its worker started."""
    application = FastAPI()
    application.state.settings = get_settings().model_copy(update={"env": env})
    application.state.notifications_settings = settings
    application.state.database = Database(engine)
    async with notifications_lifespan(application):
        return hasattr(application.state, "notifications_worker")


async def test_production_refuses_a_worker_that_would_log_emails(
    notifications_settings: NotificationsSettings, engine: AsyncEngine
) -> None:
    console = notifications_settings.model_copy(update={"transport": "console"})
    with pytest.raises(ConsoleTransportInProduction, match="NOTIFICATIONS_TRANSPORT=console"):
        await _start_notifications("production", console, engine)

    assert await _start_notifications("development", console, engine)
    assert await _start_notifications("production", notifications_settings, engine)  # smtp
    allowed = console.model_copy(update={"allow_console_in_production": True})
    assert await _start_notifications("production", allowed, engine)
    # An API that only queues (the worker runs apart) logs no email: it may start.
    queue_only = console.model_copy(update={"worker_in_process": False})
    assert not await _start_notifications("production", queue_only, engine)
