"""Secrets (codes, reset links) never rest in the outbox's rendered rows, and are wiped
once a message is sent, failed or expired."""

from __future__ import annotations

from sqlalchemy import text

from fastapi_server.apps.notifications import core
from fastapi_server.apps.notifications.settings import NotificationsSettings
from fastapi_server.resources.database.databases import Databases

CODE = "917253"
LINK = "https://app.example/forgot-password/reset?reset_token=tok.en&x=1"


async def _row(dbs: Databases, to_email: str) -> dict[str, object]:
    result = await dbs.session.execute(
        text(
            "SELECT template, subject, body_text, body_html, status, attempts, secrets "
            "FROM notifications_outbox WHERE to_email = :to"
        ),
        {"to": to_email},
    )
    return dict(result.mappings().one())


async def test_the_stored_row_holds_no_secret_and_the_sent_one_none_at_all(
    dbs: Databases,
) -> None:
    context = {"first_name": "", "code": CODE, "expires_minutes": 10}
    await core.enqueue(dbs, template="registration_code", to_email="a@example.org", context=context)
    context = {"first_name": "", "reset_url": LINK, "expires_minutes": 60}
    await core.enqueue(dbs, template="reset_password", to_email="b@example.org", context=context)
    for to_email, secret in (("a@example.org", CODE), ("b@example.org", "tok.en")):
        row = await _row(dbs, to_email)
        assert (row["status"], row["attempts"]) == ("pending", 0)  # what psql shows stays
        for column in ("subject", "body_text", "body_html"):
            assert secret not in str(row[column])

    claimed = await core.claim_due(dbs, NotificationsSettings(), "test-worker")
    by_address = {message.to_email: message for message in claimed}
    assert CODE in by_address["a@example.org"].body_text
    assert LINK in by_address["b@example.org"].body_text
    assert LINK.replace("&", "&amp;") in by_address["b@example.org"].body_html
    for message in claimed:
        assert await core.record_sent(dbs, message)
    for to_email in ("a@example.org", "b@example.org"):
        row = await _row(dbs, to_email)
        assert (row["status"], row["secrets"]) == ("sent", None)


async def test_a_message_whose_secret_expired_is_failed_and_wiped_unsent(
    dbs: Databases,
) -> None:
    context = {"first_name": "", "code": CODE, "expires_minutes": 10}
    await core.enqueue(
        dbs,
        template="registration_code",
        to_email="late@example.org",
        context=context,
        secrets_lifetime_seconds=600,
    )
    await dbs.session.execute(
        text("UPDATE notifications_outbox SET secrets_expire_on = now() - interval '1 second'")
    )
    claimed = await core.claim_due(dbs, NotificationsSettings(), "test-worker")
    assert [message.to_email for message in claimed] == []
    row = await _row(dbs, "late@example.org")
    assert (row["status"], row["secrets"]) == ("failed", None)
    requeued = await core.requeue(dbs, include_failed=True)
    assert requeued.failed == 0  # nothing left to send it with
