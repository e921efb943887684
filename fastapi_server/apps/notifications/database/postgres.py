"""All SQL of the notifications app."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_server.apps.notifications.models import CLAIMABLE, OutboxMessage, OutboxStatus

# The channel the delivery workers LISTEN on; enqueue NOTIFYs it (delivered on commit).
CHANNEL = "notifications_outbox"

_PENDING = OutboxStatus.PENDING.value
_SENDING = OutboxStatus.SENDING.value


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


class NotificationsDB:
    """Queries on the notifications app's tables, on the caller's session (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, message: OutboxMessage) -> uuid.UUID:
        """Insert a message (flushed, so its id exists); the caller's transaction decides."""
        self.session.add(message)
        await self.session.flush()
        return message.id

    async def notify_workers(self) -> None:
        """Wake the delivery workers; PostgreSQL delivers it only if the transaction commits."""
        await self.session.execute(select(func.pg_notify(CHANNEL, "")))

    async def get(self, message_id: uuid.UUID) -> OutboxMessage | None:
        return await self.session.get(OutboxMessage, message_id)

    async def for_recipient(self, to_email: str) -> list[OutboxMessage]:
        """Messages to ``to_email`` (case-insensitive), oldest first."""
        query = (
            select(OutboxMessage)
            .where(func.lower(OutboxMessage.to_email) == func.lower(to_email))
            .order_by(OutboxMessage.id)
        )
        return list(await self.session.scalars(query))

    def _due(self) -> ColumnElement[bool]:
        return and_(
            OutboxMessage.status.in_(CLAIMABLE), OutboxMessage.next_attempt_on <= func.now()
        )

    async def fail_expired(self, max_attempts: int) -> int:
        """Mark failed the "sending" rows whose lease ran out on their last allowed attempt."""
        stuck = (
            select(OutboxMessage.id)
            .where(
                self._due(),
                OutboxMessage.status == _SENDING,
                OutboxMessage.attempts >= max_attempts,
            )
            .with_for_update(skip_locked=True)
        )
        result = await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(stuck))
            .values(
                status=OutboxStatus.FAILED.value,
                last_error=func.concat(
                    "worker lease expired during the last attempt; previous error: ",
                    func.coalesce(OutboxMessage.last_error, "none"),
                ),
            )
            .returning(OutboxMessage.id),
            execution_options={"synchronize_session": False},
        )
        return len(result.all())

    async def expire_secrets(self) -> int:
        """Fail the due messages whose secrets expired, and wipe those secrets (a message
        a worker is sending right now is left to it)."""
        result = await self.session.execute(
            update(OutboxMessage)
            .where(
                self._due(),
                OutboxMessage.secrets_expire_on <= func.now(),
                OutboxMessage.secrets.is_not(None),
            )
            .values(
                status=OutboxStatus.FAILED.value,
                secrets=None,
                last_error="its secret expired before it could be sent",
            )
            .returning(OutboxMessage.id),
            execution_options={"synchronize_session": False},
        )
        return len(result.all())

    async def claim_due(
        self, *, limit: int, lease_seconds: float, worker: str, max_attempts: int
    ) -> list[OutboxMessage]:
        """Lock due rows nobody else holds (SKIP LOCKED) and lease them to ``worker``."""
        due = (
            select(OutboxMessage.id)
            .where(
                self._due(),
                or_(OutboxMessage.status == _PENDING, OutboxMessage.attempts < max_attempts),
            )
            .order_by(OutboxMessage.next_attempt_on, OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(await self.session.scalars(due))
        if not ids:
            return []
        claimed = await self.session.scalars(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(
                status=_SENDING,
                attempts=OutboxMessage.attempts + 1,
                next_attempt_on=func.now() + _seconds(lease_seconds),
                claimed_by=worker,
            )
            .returning(OutboxMessage),
            execution_options={"populate_existing": True},
        )
        return sorted(claimed, key=lambda message: message.id)

    def _leased(self, message_id: uuid.UUID, attempts: int) -> ColumnElement[bool]:
        # ``attempts`` grows at every claim: a worker whose lease was taken over updates nothing.
        return and_(
            OutboxMessage.id == message_id,
            OutboxMessage.status == _SENDING,
            OutboxMessage.attempts == attempts,
        )

    async def _update_leased(self, message_id: uuid.UUID, fence: int, **values: object) -> bool:
        result = await self.session.execute(
            update(OutboxMessage)
            .where(self._leased(message_id, fence))
            .values(**values)
            .returning(OutboxMessage.id),
            execution_options={"synchronize_session": False},
        )
        return result.first() is not None

    async def renew_leases(
        self, leases: Sequence[tuple[uuid.UUID, int]], *, worker: str, lease_seconds: float
    ) -> set[uuid.UUID]:
        """Extend the leases ``worker`` still holds, given as (id, attempts); the ids renewed.

        A row another worker re-claimed (attempts grew), or that was failed or requeued
        meanwhile, is left alone: its id is missing from the result.
        """
        if not leases:
            return set()
        result = await self.session.execute(
            update(OutboxMessage)
            .where(
                tuple_(OutboxMessage.id, OutboxMessage.attempts).in_(leases),
                OutboxMessage.status == _SENDING,
                OutboxMessage.claimed_by == worker,
            )
            .values(next_attempt_on=func.now() + _seconds(lease_seconds))
            .returning(OutboxMessage.id),
            execution_options={"synchronize_session": False},
        )
        return set(result.scalars())

    async def mark_sent(self, message_id: uuid.UUID, attempts: int) -> bool:
        """Sent: its secrets are wiped (nobody needs them again)."""
        return await self._update_leased(
            message_id, attempts, status=OutboxStatus.SENT.value, sent_on=func.now(), secrets=None
        )

    async def mark_retry(
        self, message_id: uuid.UUID, attempts: int, error: str, retry_in_seconds: float
    ) -> bool:
        return await self._update_leased(
            message_id,
            attempts,
            status=_PENDING,
            last_error=error,
            next_attempt_on=func.now() + _seconds(retry_in_seconds),
        )

    async def mark_failed(self, message_id: uuid.UUID, attempts: int, error: str) -> bool:
        return await self._update_leased(
            message_id, attempts, status=OutboxStatus.FAILED.value, last_error=error, secrets=None
        )

    async def release(self, message_id: uuid.UUID, attempts: int) -> bool:
        """Give back a claimed message that was not tried (worker stopping)."""
        return await self._update_leased(
            message_id,
            attempts,
            status=_PENDING,
            attempts=OutboxMessage.attempts - 1,
            next_attempt_on=func.now(),
        )

    async def seconds_until_next_due(self) -> float | None:
        """Seconds until the earliest claimable row is due (0 if one is), None if none."""
        earliest = await self.session.scalar(
            select(func.min(OutboxMessage.next_attempt_on)).where(
                OutboxMessage.status.in_(CLAIMABLE)
            )
        )
        if earliest is None:
            return None
        now: datetime | None = await self.session.scalar(select(func.now()))
        assert now is not None
        wait: float = (earliest - now).total_seconds()
        return max(wait, 0.0)

    async def count_by_status(self) -> dict[str, int]:
        """How many messages are in each status (absent statuses: none)."""
        rows = await self.session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        return {str(status): int(count) for status, count in rows.tuples()}

    async def oldest_unsent_age_seconds(self) -> float | None:
        """Seconds since the oldest message still to be sent (pending or sending) was
        queued; None when none waits."""
        age = await self.session.scalar(
            select(func.extract("epoch", func.now() - func.min(OutboxMessage.created_on))).where(
                OutboxMessage.status.in_(CLAIMABLE)
            )
        )
        return None if age is None else float(age)

    async def requeue(self, status: str, *, reset_attempts: bool = False) -> int:
        """Make messages in ``status`` pending and due now; how many changed.

        pending: only those waiting for a later attempt; sending: only those whose lease
        ran out (a live worker keeps its own); failed: all of them.
        """
        values: dict[str, object] = {"status": _PENDING, "next_attempt_on": func.now()}
        if reset_attempts:
            values["attempts"] = 0
        # A message whose secrets were wiped cannot be sent again.
        query = update(OutboxMessage).where(
            OutboxMessage.status == status,
            or_(OutboxMessage.secrets_expire_on.is_(None), OutboxMessage.secrets.is_not(None)),
        )
        if status == _PENDING:
            query = query.where(OutboxMessage.next_attempt_on > func.now())
        elif status == _SENDING:
            query = query.where(OutboxMessage.next_attempt_on <= func.now())
        result = await self.session.execute(
            query.values(**values).returning(OutboxMessage.id),
            execution_options={"synchronize_session": False},
        )
        return len(result.all())
