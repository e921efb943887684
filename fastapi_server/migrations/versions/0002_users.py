"""The users app's tables: users, user_refresh_tokens, user_verification_codes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from fastapi_server.migrations.helpers import add_updated_on_trigger, drop_updated_on_trigger

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("users", "user_refresh_tokens", "user_verification_codes")


def _audit_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            "created_on",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
            comment="When the row was created.",
        ),
        sa.Column(
            "updated_on",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
            comment="When the row last changed (set by a trigger on every UPDATE).",
        ),
    ]


def _users() -> None:
    op.create_table(
        "users",
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            server_default=sa.func.gen_random_uuid(),
            nullable=False,
            comment="The user's id (random UUID).",
        ),
        sa.Column(
            "email",
            sa.String(320),
            nullable=False,
            comment="Login and contact address, as typed; unique ignoring case "
            "(uq_users_email_lower).",
        ),
        sa.Column("first_name", sa.String(100), nullable=False, comment="Given name."),
        sa.Column("last_name", sa.String(100), nullable=False, comment="Family name."),
        sa.Column(
            "hashed_password",
            sa.String(255),
            nullable=False,
            comment="Password hash in passlib format (argon2id; older bcrypt hashes are "
            "rehashed at the next login). Never the password.",
        ),
        sa.Column(
            "is_active",
            sa.Boolean(),
            server_default=sa.text("true"),
            nullable=False,
            comment="False: the account may not log in and its tokens are refused.",
        ),
        sa.Column(
            "is_verified",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
            comment="True once the emailed registration code was confirmed.",
        ),
        sa.Column(
            "is_superuser",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
            comment="May administer every account (GET /users, feature flags...).",
        ),
        sa.Column(
            "token_version",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Tokens carry it; bumped on password reset, logout and deactivation, "
            "which invalidates every token issued before.",
        ),
        sa.Column(
            "login_failed_count",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Consecutive failed logins; reset by a success or scripts/activate_user.py.",
        ),
        sa.Column(
            "locked_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Logins are refused until then (after too many failures); NULL: not locked.",
        ),
        sa.Column(
            "last_login",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Last successful login.",
        ),
        sa.Column(
            "verified_on",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the email was verified.",
        ),
        sa.Column(
            "deactivated_on",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When is_active last became false (set by a trigger); NULL while active.",
        ),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        comment="User accounts.",
    )
    # Case-insensitive uniqueness in the database itself: concurrent registrations of
    # Ada@x.org and ada@X.org cannot both commit.
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    add_updated_on_trigger("users")
    # Deactivation (from the API, a script or psql) invalidates every token issued
    # before it and records when; re-activation clears the date.
    op.execute(
        """
        CREATE FUNCTION users_track_activation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.is_active AND NOT NEW.is_active THEN
                NEW.token_version := OLD.token_version + 1;
                NEW.deactivated_on := now();
            ELSIF NEW.is_active AND NOT OLD.is_active THEN
                NEW.deactivated_on := NULL;
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        "COMMENT ON FUNCTION users_track_activation() IS 'Trigger function: on deactivation "
        "bumps users.token_version (old tokens die) and sets deactivated_on; on "
        "re-activation clears deactivated_on.'"
    )
    op.execute(
        "CREATE TRIGGER users_track_activation BEFORE UPDATE OF is_active ON users "
        "FOR EACH ROW EXECUTE FUNCTION users_track_activation()"
    )


def _refresh_tokens() -> None:
    op.create_table(
        "user_refresh_tokens",
        sa.Column(
            "jti",
            postgresql.UUID(as_uuid=True),
            nullable=False,
            comment="The token's jti claim.",
        ),
        sa.Column(
            "user_id",
            postgresql.UUID(as_uuid=True),
            nullable=False,
            comment="Owner of the token.",
        ),
        sa.Column(
            "family_id",
            postgresql.UUID(as_uuid=True),
            nullable=False,
            comment="Every token rotated from one login shares it; reuse revokes the family.",
        ),
        sa.Column(
            "expires_on",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="When the token expires.",
        ),
        sa.Column(
            "used_on",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When it was exchanged for a new pair (rotation).",
        ),
        sa.Column(
            "revoked_on",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When it was revoked (logout, reuse, password reset).",
        ),
        *_audit_columns(),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_user_refresh_tokens_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jti", name="pk_user_refresh_tokens"),
        comment="Refresh tokens issued, for rotation and revocation.",
    )
    op.create_index(
        "ix_user_refresh_tokens_user_id", "user_refresh_tokens", ["user_id"], unique=False
    )
    op.create_index(
        "ix_user_refresh_tokens_family_id", "user_refresh_tokens", ["family_id"], unique=False
    )
    add_updated_on_trigger("user_refresh_tokens")


def _verification_codes() -> None:
    op.create_table(
        "user_verification_codes",
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            server_default=sa.func.gen_random_uuid(),
            nullable=False,
            comment="The code's id (the verification token's jti).",
        ),
        sa.Column(
            "user_id",
            postgresql.UUID(as_uuid=True),
            nullable=False,
            comment="Account being verified.",
        ),
        sa.Column(
            "code_hmac",
            sa.String(64),
            nullable=False,
            comment="HMAC-SHA256 of the code (hex); the code itself is never stored.",
        ),
        sa.Column(
            "password_fingerprint",
            sa.String(64),
            nullable=False,
            comment="HMAC of the password hash in force when requested: a new password kills "
            "the code.",
        ),
        sa.Column(
            "expires_on",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="When the code expires (10 minutes at most).",
        ),
        sa.Column(
            "attempts",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Wrong codes tried so far.",
        ),
        sa.Column(
            "used_on",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When it verified the account, or was superseded by a newer code.",
        ),
        *_audit_columns(),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_user_verification_codes_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_user_verification_codes"),
        comment="Registration codes emailed to users (HMACs, single use).",
    )
    op.create_index(
        "ix_user_verification_codes_user_id",
        "user_verification_codes",
        ["user_id"],
        unique=False,
    )
    add_updated_on_trigger("user_verification_codes")


def upgrade() -> None:
    _users()
    _refresh_tokens()
    _verification_codes()


def downgrade() -> None:
    for table in reversed(TABLES):
        drop_updated_on_trigger(table)
    op.execute("DROP TRIGGER IF EXISTS users_track_activation ON users")
    op.execute("DROP FUNCTION IF EXISTS users_track_activation()")
    op.drop_table("user_verification_codes")
    op.drop_table("user_refresh_tokens")
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_table("users")
