"""Recipients and bodies are data: no header injection through names, subjects or addresses."""

from __future__ import annotations

import email
import email.policy
import uuid

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from fastapi_server.apps.notifications.messages import build_email
from fastapi_server.apps.notifications.schemas import ClaimedMessage
from fastapi_server.apps.notifications.settings import NotificationsSettings
from fastapi_server.resources.database.postgres import Database
from fastapi_server.tests.helpers.mail import SMTPCatcher, text_body
from fastapi_server.tests.helpers.waiting import eventually
from fastapi_server.tests.notifications.conftest import (
    WorkerFactory,
    enqueue_committed,
    fast_settings,
    outbox_row,
)

INJECTION = "Eve\r\nBcc: victim@example.com\r\nX-Evil: 1"


def _claimed(**overrides: str) -> ClaimedMessage:
    values = {
        "to_email": "ada@example.com",
        "to_name": "Ada",
        "subject": "Hello",
        "body_text": "text",
        "body_html": "<p>html</p>",
    }
    return ClaimedMessage(id=uuid.uuid4(), attempts=1, **{**values, **overrides})


def test_line_breaks_in_name_and_subject_stay_inside_their_header() -> None:
    built = build_email(_claimed(to_name=INJECTION, subject=INJECTION), fast_settings(1))
    parsed = email.message_from_bytes(built.as_bytes(), policy=email.policy.default)

    assert parsed["Bcc"] is None
    assert parsed["X-Evil"] is None
    assert parsed.get_all("To") == ['"Eve Bcc: victim@example.com X-Evil: 1" <ada@example.com>']
    assert parsed["Subject"] == "Eve Bcc: victim@example.com X-Evil: 1"
    assert parsed["Message-ID"] is not None


@pytest.mark.parametrize(
    "address", ["ada@example.com\r\nBcc: victim@example.com", "ada@example.com, victim@example.com"]
)
def test_an_address_smuggling_more_recipients_cannot_be_built(address: str) -> None:
    with pytest.raises(ValueError, match="addr_spec"):
        build_email(_claimed(to_email=address), fast_settings(1))


async def test_injection_through_the_outbox_reaches_only_the_recipient(
    committed: Database, smtp: SMTPCatcher, start_worker: WorkerFactory
) -> None:
    """Rows written by psql bypass ``enqueue``'s checks; the worker still neutralises them."""
    _, by_row, bad_address = await enqueue_committed(
        committed, ["name@example.com", "row@example.com", "bad@example.com"]
    )
    async with committed.transaction() as session:
        await session.execute(
            text("UPDATE notifications_outbox SET to_name = :v, subject = :v WHERE id = :id"),
            {"v": INJECTION, "id": by_row},
        )
        await session.execute(
            text("UPDATE notifications_outbox SET to_email = :v WHERE id = :id"),
            {"v": "bad@example.com\r\nBcc: victim@example.com", "id": bad_address},
        )
    start_worker()

    first = await smtp.wait_for("row@example.com")
    await smtp.wait_for("name@example.com")

    async def bad_one_failed() -> bool:
        return bool((await outbox_row(committed, bad_address))["status"] == "failed")

    await eventually(bad_one_failed, what="the unusable address to fail")
    assert first["Bcc"] is None
    assert first["X-Evil"] is None
    assert "Hello Ada," in text_body(first)
    recipients = sorted(rcpt for envelope in smtp.envelopes for rcpt in envelope.rcpt_tos)
    assert recipients == ["name@example.com", "row@example.com"]
    failed = await outbox_row(committed, bad_address)
    assert failed["attempts"] == 1  # not retried: it can never work
    assert "cannot build the message" in failed["last_error"]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("from_name", "Platform\r\nBcc: victim@example.com", "single line"),
        ("from_name", "Platform\x00", "control characters"),
        ("app_name", "Acme\nX-Evil: 1", "single line"),
        ("from_email", "no-reply@example.com\r\nBcc: victim@example.com", "single line"),
        ("from_email", "Platform <no-reply@example.com>", "single plain email address"),
        ("from_email", "no-reply", "single plain email address"),
    ],
)
def test_sender_and_names_from_settings_are_single_clean_lines(
    field: str, value: str, error: str
) -> None:
    with pytest.raises(ValidationError, match=error):
        NotificationsSettings.model_validate({field: value})
