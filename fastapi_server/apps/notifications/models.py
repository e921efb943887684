"""Tables of the notifications app: the outbox every email goes through."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, Integer, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fastapi_server.lib.ids import uuid7
from fastapi_server.resources.database.base import AuditMixin, Base


class OutboxStatus(StrEnum):
    """Where a message is in its life: pending -> sending -> sent, or failed."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


# Rows a worker may claim: waiting ones, and "sending" ones whose lease ran out.
CLAIMABLE = (OutboxStatus.PENDING.value, OutboxStatus.SENDING.value)
_CLAIMABLE_SQL = "status IN ('pending', 'sending')"


COMMENT_ID = (
    "Message id, also the email's Message-ID: time-ordered (UUIDv7) when the app writes "
    "the row, random when a row is inserted by hand."
)


class OutboxMessage(AuditMixin, Base):
    """One rendered email, written in the sender's transaction and delivered by a worker."""

    __tablename__ = "notifications_outbox"

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True,
        default=uuid7,
        server_default=func.gen_random_uuid(),
        comment=COMMENT_ID,
    )
    template: Mapped[str] = mapped_column(Text, comment="Template the message was rendered from.")
    to_email: Mapped[str] = mapped_column(Text, comment="Recipient address.")
    to_name: Mapped[str] = mapped_column(
        Text, server_default="", comment="Recipient display name (may be empty)."
    )
    subject: Mapped[str] = mapped_column(Text, comment="Rendered subject line.")
    body_text: Mapped[str] = mapped_column(Text, comment="Rendered plain-text part.")
    body_html: Mapped[str] = mapped_column(Text, comment="Rendered HTML part.")
    status: Mapped[str] = mapped_column(
        Text,
        server_default=OutboxStatus.PENDING.value,
        comment="pending (waiting for its next attempt), sending (claimed by a worker until "
        "next_attempt_on), sent, or failed (gave up after max attempts).",
    )
    attempts: Mapped[int] = mapped_column(
        Integer, server_default="0", comment="Delivery attempts started so far."
    )
    next_attempt_on: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.now(),
        comment="When the message may next be tried; while sending, when the worker's lease "
        "expires and another worker may take it over.",
    )
    claimed_by: Mapped[str | None] = mapped_column(
        Text, comment="Worker (host:pid:tag) that last claimed the message."
    )
    last_error: Mapped[str | None] = mapped_column(
        Text, comment="Error of the last failed attempt (NULL when none failed)."
    )
    sent_on: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="When the mail server accepted the message."
    )

    secrets: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB(none_as_null=True),
        comment="Secret values (codes, reset links) the worker fills into the bodies' "
        "placeholders at send time; NULL once sent, failed or expired.",
    )
    secrets_expire_on: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        comment="When the secrets stop working: the message is then failed unsent and "
        "its secrets wiped.",
    )

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed')", name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index(
            "ix_notifications_outbox_due", "next_attempt_on", postgresql_where=text(_CLAIMABLE_SQL)
        ),
        # Recipients are looked up case-insensitively (support, tests): lower(to_email) = ...
        Index("ix_notifications_outbox_to_email", func.lower(to_email)),
        # The messages whose secrets may expire (the worker checks them at every claim).
        Index(
            "ix_notifications_outbox_secrets_expire_on",
            "secrets_expire_on",
            postgresql_where=text("secrets IS NOT NULL"),
        ),
        {
            "comment": "Outgoing email (outbox): rows are written in the transaction that "
            "wants the email and sent by the delivery worker after commit. The id is the "
            "Message-ID. status pending/sending/sent/failed; see attempts and last_error."
        },
    )
