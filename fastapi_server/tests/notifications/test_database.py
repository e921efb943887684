"""The notifications app's data layer (``database/postgres.py``) on the real database."""

from __future__ import annotations

import uuid

from fastapi_server.apps.notifications.models import OutboxMessage
from fastapi_server.resources.database.databases import Databases


async def _queued(dbs: Databases, to_email: str) -> uuid.UUID:
    message = OutboxMessage(
        template="welcome",
        to_email=to_email,
        to_name="Ada",
        subject="Welcome",
        body_text="Hello",
        body_html="<p>Hello</p>",
    )
    return await dbs.notifications.add(message)


async def test_a_claim_leases_a_message_once_and_a_stale_lease_changes_nothing(
    dbs: Databases,
) -> None:
    message_id = await _queued(dbs, "ada@example.org")
    claim = {"limit": 100, "lease_seconds": 60, "max_attempts": 3}
    claimed = await dbs.notifications.claim_due(worker="w1", **claim)
    ours = [message for message in claimed if message.id == message_id]
    assert [(m.status, m.attempts, m.claimed_by) for m in ours] == [("sending", 1, "w1")]
    again = await dbs.notifications.claim_due(worker="w2", **claim)
    assert message_id not in {message.id for message in again}  # leased for 60 s
    assert await dbs.notifications.mark_sent(message_id, attempts=0) is False  # stale fence
    assert await dbs.notifications.mark_sent(message_id, attempts=1) is True
    sent = await dbs.notifications.get(message_id)
    assert sent is not None
    await dbs.session.refresh(sent)
    assert (sent.status, sent.sent_on is not None) == ("sent", True)


async def test_a_recipients_messages_are_found_whatever_the_case_oldest_first(
    dbs: Databases,
) -> None:
    first = await _queued(dbs, "Grace@Example.org")
    second = await _queued(dbs, "grace@example.org")
    await _queued(dbs, "someone.else@example.org")
    found = await dbs.notifications.for_recipient("GRACE@example.ORG")
    assert [message.id for message in found] == [first, second]
