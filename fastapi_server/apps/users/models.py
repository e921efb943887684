"""Tables of the users app: accounts, refresh tokens, verification codes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from fastapi_server.resources.database.base import AuditMixin, Base

EMAIL_MAX_LENGTH = 320
NAME_MAX_LENGTH = 100


class User(AuditMixin, Base):
    """An account: identity, password hash, status flags, login bookkeeping."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        server_default=func.gen_random_uuid(),
        comment="The user's id (random UUID).",
    )
    email: Mapped[str] = mapped_column(
        String(EMAIL_MAX_LENGTH),
        comment="Login and contact address, as typed; unique ignoring case (uq_users_email_lower).",
    )
    first_name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), comment="Given name.")
    last_name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), comment="Family name.")
    hashed_password: Mapped[str] = mapped_column(
        String(255),
        comment="Password hash in passlib format (argon2id; older bcrypt hashes are "
        "rehashed at the next login). Never the password.",
    )
    is_active: Mapped[bool] = mapped_column(
        Boolean,
        server_default=text("true"),
        comment="False: the account may not log in and its tokens are refused.",
    )
    is_verified: Mapped[bool] = mapped_column(
        Boolean,
        server_default=text("false"),
        comment="True once the emailed registration code was confirmed.",
    )
    is_superuser: Mapped[bool] = mapped_column(
        Boolean,
        server_default=text("false"),
        comment="May administer every account (GET /users, feature flags...).",
    )
    token_version: Mapped[int] = mapped_column(
        Integer,
        server_default=text("0"),
        comment="Tokens carry it; bumped on password reset, logout and deactivation, "
        "which invalidates every token issued before.",
    )
    login_failed_count: Mapped[int] = mapped_column(
        Integer,
        server_default=text("0"),
        comment="Consecutive failed logins; reset by a success or scripts/activate_user.py.",
    )
    locked_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        comment="Logins are refused until then (after too many failures); NULL: not locked.",
    )
    last_login: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="Last successful login."
    )
    verified_on: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="When the email was verified."
    )
    registration_contested_on: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        comment="When someone registered this still unverified address again with "
        "another password; verification then keeps no password the verifier did not "
        "type. NULL: uncontested (or verified).",
    )
    login_failed_on: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        comment="Last failed login; failures older than USERS_LOGIN_FAILURE_DECAY_SECONDS "
        "no longer count.",
    )
    deactivated_on: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        comment="When is_active last became false (set by a trigger); NULL while active.",
    )

    __table_args__ = (
        Index("uq_users_email_lower", func.lower(email), unique=True),
        {"comment": "User accounts."},
    )


class RefreshToken(AuditMixin, Base):
    """One issued refresh token; rotation marks it used, reuse revokes its family."""

    __tablename__ = "user_refresh_tokens"

    jti: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, comment="The token's jti claim."
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("users.id", ondelete="CASCADE"),
        index=True,
        comment="Owner of the token.",
    )
    family_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        index=True,
        comment="Every token rotated from one login shares it; reuse revokes the family.",
    )
    expires_on: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), comment="When the token expires."
    )
    used_on: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="When it was exchanged for a new pair (rotation)."
    )
    revoked_on: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="When it was revoked (logout, reuse, password reset)."
    )

    __table_args__ = ({"comment": "Refresh tokens issued, for rotation and revocation."},)


class VerificationCode(AuditMixin, Base):
    """A 6-digit registration code, kept as an HMAC only; the token names its id."""

    __tablename__ = "user_verification_codes"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        server_default=func.gen_random_uuid(),
        comment="The code's id (the verification token's jti).",
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("users.id", ondelete="CASCADE"),
        index=True,
        comment="Account being verified.",
    )
    code_hmac: Mapped[str] = mapped_column(
        String(64), comment="HMAC-SHA256 of the code (hex); the code itself is never stored."
    )
    password_fingerprint: Mapped[str] = mapped_column(
        String(64),
        comment="HMAC of the password hash in force when requested: a new password kills the code.",
    )
    expires_on: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), comment="When the code expires (10 minutes at most)."
    )
    keeps_password: Mapped[bool] = mapped_column(
        Boolean,
        server_default=text("true"),
        comment="False when the account's registration was contested as the code was "
        "requested: verifying with it keeps no password the verifier did not type.",
    )
    attempts: Mapped[int] = mapped_column(
        Integer, server_default=text("0"), comment="Wrong codes tried so far."
    )
    used_on: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        comment="When it verified the account, or was superseded by a newer code.",
    )

    __table_args__ = ({"comment": "Registration codes emailed to users (HMACs, single use)."},)
