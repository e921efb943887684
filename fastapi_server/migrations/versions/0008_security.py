"""Security hardening: contested registrations, decaying login failures, rate limit
counters, and the outbox's secrets kept apart from the rendered bodies.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTBOX = "notifications_outbox"
COUNTERS = "rate_limit_counters"


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column(
            "registration_contested_on",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When someone registered this still unverified address again with "
            "another password; verification then keeps no password the verifier did not "
            "type. NULL: uncontested (or verified).",
        ),
    )
    op.add_column(
        "user_verification_codes",
        sa.Column(
            "keeps_password",
            sa.Boolean(),
            server_default=sa.text("true"),
            nullable=False,
            comment="False when the account's registration was contested as the code was "
            "requested: verifying with it keeps no password the verifier did not type.",
        ),
    )
    op.add_column(
        "users",
        sa.Column(
            "login_failed_on",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Last failed login; failures older than USERS_LOGIN_FAILURE_DECAY_SECONDS "
            "no longer count.",
        ),
    )
    op.add_column(
        OUTBOX,
        sa.Column(
            "secrets",
            sa.dialects.postgresql.JSONB(),
            nullable=True,
            comment="Secret values (codes, reset links) the worker fills into the bodies' "
            "placeholders at send time; NULL once sent, failed or expired.",
        ),
    )
    op.add_column(
        OUTBOX,
        sa.Column(
            "secrets_expire_on",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the secrets stop working: the message is then failed unsent and "
            "its secrets wiped.",
        ),
    )
    op.create_index(
        "ix_notifications_outbox_secrets_expire_on",
        OUTBOX,
        ["secrets_expire_on"],
        postgresql_where=sa.text("secrets IS NOT NULL"),
    )
    op.create_table(
        COUNTERS,
        sa.Column(
            "key",
            sa.Text(),
            nullable=False,
            comment="What is counted: rule and subject, e.g. login:ip:203.0.113.9 or "
            "login:email:<keyed hash of the address>.",
        ),
        sa.Column(
            "window_start",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="Start of the fixed window the hits belong to.",
        ),
        sa.Column(
            "window_end",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="End of that window; rows past it are purged.",
        ),
        sa.Column("hits", sa.Integer(), nullable=False, comment="Requests counted in the window."),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_counters")),
        comment="Rate limit counters (fixed windows), shared by every worker and instance.",
    )
    op.create_index("ix_rate_limit_counters_window_end", COUNTERS, ["window_end"])


def downgrade() -> None:
    op.drop_index("ix_rate_limit_counters_window_end", table_name=COUNTERS)
    op.drop_table(COUNTERS)
    op.drop_index("ix_notifications_outbox_secrets_expire_on", table_name=OUTBOX)
    op.drop_column(OUTBOX, "secrets_expire_on")
    op.drop_column(OUTBOX, "secrets")
    op.drop_column("users", "login_failed_on")
    op.drop_column("user_verification_codes", "keeps_password")
    op.drop_column("users", "registration_contested_on")
