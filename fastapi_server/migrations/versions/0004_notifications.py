"""The notifications app's tables: the email outbox.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fastapi_server.migrations.helpers import add_updated_on_trigger, drop_updated_on_trigger

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "notifications_outbox"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column(
            "id",
            sa.Uuid(),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
            comment=(
                "Message id, also the email's Message-ID: time-ordered (UUIDv7) when the app "
                "writes the row, random when a row is inserted by hand."
            ),
        ),
        sa.Column(
            "template", sa.Text(), nullable=False, comment="Template the message was rendered from."
        ),
        sa.Column("to_email", sa.Text(), nullable=False, comment="Recipient address."),
        sa.Column(
            "to_name",
            sa.Text(),
            server_default="",
            nullable=False,
            comment="Recipient display name (may be empty).",
        ),
        sa.Column("subject", sa.Text(), nullable=False, comment="Rendered subject line."),
        sa.Column("body_text", sa.Text(), nullable=False, comment="Rendered plain-text part."),
        sa.Column("body_html", sa.Text(), nullable=False, comment="Rendered HTML part."),
        sa.Column(
            "status",
            sa.Text(),
            server_default="pending",
            nullable=False,
            comment="pending (waiting for its next attempt), sending (claimed by a worker until "
            "next_attempt_on), sent, or failed (gave up after max attempts).",
        ),
        sa.Column(
            "attempts",
            sa.Integer(),
            server_default="0",
            nullable=False,
            comment="Delivery attempts started so far.",
        ),
        sa.Column(
            "next_attempt_on",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the message may next be tried; while sending, when the worker's lease "
            "expires and another worker may take it over.",
        ),
        sa.Column(
            "claimed_by",
            sa.Text(),
            nullable=True,
            comment="Worker (host:pid:tag) that last claimed the message.",
        ),
        sa.Column(
            "last_error",
            sa.Text(),
            nullable=True,
            comment="Error of the last failed attempt (NULL when none failed).",
        ),
        sa.Column(
            "sent_on",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the mail server accepted the message.",
        ),
        sa.Column(
            "created_on",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was created.",
        ),
        sa.Column(
            "updated_on",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row last changed (set by a trigger on every UPDATE).",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed')",
            name=op.f("ck_notifications_outbox_status"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_notifications_outbox_attempts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications_outbox")),
        comment="Outgoing email (outbox): rows are written in the transaction that "
        "wants the email and sent by the delivery worker after commit. The id is the "
        "Message-ID. status pending/sending/sent/failed; see attempts and last_error.",
    )
    op.create_index(
        "ix_notifications_outbox_due",
        TABLE,
        ["next_attempt_on"],
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )
    op.create_index("ix_notifications_outbox_to_email", TABLE, [sa.text("lower(to_email)")])
    add_updated_on_trigger(TABLE)


def downgrade() -> None:
    drop_updated_on_trigger(TABLE)
    op.drop_index("ix_notifications_outbox_to_email", table_name=TABLE)
    op.drop_index("ix_notifications_outbox_due", table_name=TABLE)
    op.drop_table(TABLE)
