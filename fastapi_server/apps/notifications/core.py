"""The notifications app's rules: queue email in the caller's transaction, track delivery.

``enqueue`` renders the message now and writes it to the outbox on the caller's session;
nothing leaves the process until that transaction commits (the delivery worker sends
committed rows only). The worker uses the functions below, each in its own short
transaction, and sends outside any transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

# Public: other apps check an address with ``notifications.checked_address`` too.
from fastapi_server.apps.notifications.addresses import checked_address as checked_address
from fastapi_server.apps.notifications.models import OutboxMessage, OutboxStatus
from fastapi_server.apps.notifications.rendering import (
    fill_secrets,
    one_line,
    render,
    secret_keys,
)
from fastapi_server.apps.notifications.schemas import ClaimedMessage, RequeueResult
from fastapi_server.apps.notifications.settings import (
    NotificationsSettings,
    get_notifications_settings,
)
from fastapi_server.config import get_settings
from fastapi_server.resources.database.databases import Databases

MAX_ERROR_LENGTH = 2000
MAX_NAME_LENGTH = 200


def app_link(path: str, **query: str) -> str:
    """An absolute link into the web front end (``APP_URL``), e.g. ``app_link("/login")``."""
    base = get_settings().app_url.rstrip("/")
    link = f"{base}/{path.lstrip('/')}"
    return f"{link}?{urlencode(query)}" if query else link


def _template_defaults(settings: NotificationsSettings) -> dict[str, Any]:
    return {
        "app_name": settings.app_name,
        "app_url": get_settings().app_url,
        "login_url": app_link(settings.login_path),
        "forgot_password_url": app_link(settings.forgot_password_path),
    }


async def enqueue(
    dbs: Databases,
    *,
    template: str,
    to_email: str,
    to_name: str = "",
    context: dict[str, Any],
    secrets_lifetime_seconds: int | None = None,
) -> uuid.UUID:
    """Render ``template`` and queue it for ``to_email`` in the caller's transaction.

    Returns the message id (also its Message-ID). The message is sent only once the
    caller's transaction commits; a rollback drops it. Unknown template, missing context
    or a malformed address -> ValueError (a programming error).

    The template's secret values (a code, a reset link) stay out of the rendered bodies:
    they are kept in ``secrets`` until the message is sent or fails, and at most
    ``secrets_lifetime_seconds`` (the secret's own lifetime), then wiped.
    """
    settings = get_notifications_settings()
    address = checked_address(to_email)
    rendered = render(
        template, context, _template_defaults(settings), settings.subjects.get(template)
    )
    secrets = {key: str(context[key]) for key in secret_keys(template)}
    message = OutboxMessage(
        template=template,
        to_email=address,
        to_name=one_line(to_name, MAX_NAME_LENGTH),
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        secrets=secrets or None,
        secrets_expire_on=(
            datetime.now(UTC) + timedelta(seconds=secrets_lifetime_seconds)
            if secrets and secrets_lifetime_seconds is not None
            else None
        ),
    )
    message_id = await dbs.notifications.add(message)
    await dbs.notifications.notify_workers()
    return message_id


def _claimed(message: OutboxMessage) -> ClaimedMessage:
    """What the worker sends: the stored bodies with their secrets filled in."""
    secrets = message.secrets or {}
    return ClaimedMessage(
        id=message.id,
        to_email=message.to_email,
        to_name=message.to_name,
        subject=message.subject,
        body_text=fill_secrets(message.body_text, secrets, html=False),
        body_html=fill_secrets(message.body_html, secrets, html=True),
        attempts=message.attempts,
    )


async def claim_due(
    dbs: Databases, settings: NotificationsSettings, worker: str
) -> list[ClaimedMessage]:
    """Lease up to a batch of due messages to ``worker`` (SKIP LOCKED: never twice)."""
    await dbs.notifications.fail_expired(settings.max_attempts)
    await dbs.notifications.expire_secrets()
    claimed = await dbs.notifications.claim_due(
        limit=settings.batch_size,
        lease_seconds=settings.lease_seconds,
        worker=worker,
        max_attempts=settings.max_attempts,
    )
    return [_claimed(message) for message in claimed]


async def renew_leases(
    dbs: Databases,
    settings: NotificationsSettings,
    worker: str,
    messages: Sequence[ClaimedMessage],
) -> list[ClaimedMessage]:
    """Give ``worker`` a fresh lease on ``messages``; those still its own, in order.

    The worker calls this right before each send, for the rest of its batch: a batch
    may take longer than one lease, and a message another worker has taken over since
    must not be sent again.
    """
    renewed = await dbs.notifications.renew_leases(
        [(message.id, message.attempts) for message in messages],
        worker=worker,
        lease_seconds=settings.lease_seconds,
    )
    return [message for message in messages if message.id in renewed]


async def record_sent(dbs: Databases, message: ClaimedMessage) -> bool:
    """The mail server accepted ``message``; False if the lease had been taken over."""
    return await dbs.notifications.mark_sent(message.id, message.attempts)


async def record_failure(
    dbs: Databases,
    settings: NotificationsSettings,
    message: ClaimedMessage,
    error: str,
    *,
    permanent: bool = False,
) -> OutboxStatus:
    """Record a failed attempt: retry later with backoff, or give up (failed)."""
    error = error[:MAX_ERROR_LENGTH]
    if permanent or message.attempts >= settings.max_attempts:
        await dbs.notifications.mark_failed(message.id, message.attempts, error)
        return OutboxStatus.FAILED
    retry_in = settings.backoff_seconds(message.attempts)
    await dbs.notifications.mark_retry(message.id, message.attempts, error, retry_in)
    return OutboxStatus.PENDING


async def release(dbs: Databases, message: ClaimedMessage) -> bool:
    """Hand back a claimed message that was never tried (the worker is stopping)."""
    return await dbs.notifications.release(message.id, message.attempts)


async def seconds_until_next_due(dbs: Databases) -> float | None:
    """How long a worker may sleep before a message is due (None: nothing waits)."""
    return await dbs.notifications.seconds_until_next_due()


async def count_by_status(dbs: Databases) -> dict[str, int]:
    """Messages per status: pending, sending, sent, failed (0 when none)."""
    counts = await dbs.notifications.count_by_status()
    return {status.value: counts.get(status.value, 0) for status in OutboxStatus}


async def oldest_unsent_age_seconds(dbs: Databases) -> float | None:
    """How long the oldest message still to be sent has waited (None: none waits)."""
    return await dbs.notifications.oldest_unsent_age_seconds()


async def requeue(dbs: Databases, *, include_failed: bool) -> RequeueResult:
    """Put messages back in line, due now, and wake the workers.

    Always: pending messages waiting out a backoff, and "sending" ones whose worker's
    lease expired (attempt counts kept). With ``include_failed``: failed messages too,
    with their attempt count reset, so they get a full set of attempts again.
    """
    db = dbs.notifications
    result = RequeueResult(
        pending=await db.requeue(OutboxStatus.PENDING.value),
        stuck=await db.requeue(OutboxStatus.SENDING.value),
        failed=(
            await db.requeue(OutboxStatus.FAILED.value, reset_attempts=True)
            if include_failed
            else 0
        ),
    )
    await db.notify_workers()
    return result
