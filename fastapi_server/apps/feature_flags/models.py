"""Tables of the feature flags app: the flags and their append-only history.

The database keeps both honest whoever writes (API, scripts or psql): triggers stamp
``created_by``/``updated_by``, write ``feature_flag_history`` and send ``NOTIFY`` so
that every process refreshes its cache (migration 0003).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    SmallInteger,
    String,
    Text,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fastapi_server.resources.database.base import AuditMixin, Base

CODENAME_MAX_LENGTH = 100
# The same rules as schemas.CODENAME_PATTERN and schemas.RESERVED_CODENAMES, enforced
# for psql users too.
CODENAME_SQL_PATTERN = "^[A-Za-z0-9_.-]{1,100}$"
RESERVED_CODENAMES_SQL = "'evaluate', '.', '..'"


class FeatureFlag(AuditMixin, Base):
    """A switch the code reads through ``core.is_enabled``."""

    __tablename__ = "feature_flags"
    __table_args__ = (
        CheckConstraint(f"codename ~ '{CODENAME_SQL_PATTERN}'", name="codename_format"),
        CheckConstraint(
            f"codename NOT IN ({RESERVED_CODENAMES_SQL})", name="codename_not_reserved"
        ),
        CheckConstraint("rollout_percentage BETWEEN 0 AND 100", name="rollout_percentage_range"),
        CheckConstraint(
            "flag_type IN ('boolean', 'string', 'integer', 'float', 'object')",
            name="flag_type_known",
        ),
        {
            "comment": (
                "Feature flags. Edit freely with SQL: triggers record every change in "
                "feature_flag_history and notify the API processes, which refresh within a "
                "second."
            )
        },
    )

    codename: Mapped[str] = mapped_column(
        String(CODENAME_MAX_LENGTH),
        primary_key=True,
        comment="The name the code uses, e.g. FF_ENABLE_REGISTRATION (letters, digits, _ - .).",
    )
    label: Mapped[str] = mapped_column(
        String(200), server_default="", comment="Short human name shown to administrators."
    )
    description: Mapped[str] = mapped_column(
        Text, server_default="", comment="What the flag does and who relies on it."
    )
    is_active: Mapped[bool] = mapped_column(
        server_default=false(),
        comment="Master switch: false means off for everyone, whatever the targeting says.",
    )
    user_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(Uuid),
        server_default=text("'{}'::uuid[]"),
        comment="Users who see the flag on (when active) whatever rollout_percentage says.",
    )
    rollout_percentage: Mapped[int] = mapped_column(
        SmallInteger,
        server_default=text("100"),
        comment=(
            "0-100: share of signed-in users who see the flag on (when active), by a sticky "
            "hash of codename and user id; anonymous callers only at 100."
        ),
    )
    # Typed variants (migration 0007; rules in variants.py, enforced by a trigger too).
    flag_type: Mapped[str] = mapped_column(
        String(10),
        server_default="boolean",
        comment=(
            "boolean (default), string, integer, float or object: the JSON type of every "
            "variant's value."
        ),
    )
    variants: Mapped[dict[str, Any]] = mapped_column(
        JSONB,
        server_default=text("'{}'::jsonb"),
        comment=(
            'Variant name -> JSON value of flag_type, e.g. {"blue": "#00f"}. Empty: a '
            "boolean flag serving true when on and false when off."
        ),
    )
    default_variant: Mapped[str | None] = mapped_column(
        String(100),
        comment="The variant served when the flag is on for the caller (null: no variants).",
    )
    off_variant: Mapped[str | None] = mapped_column(
        String(100),
        comment=(
            "The variant served when is_active is false or the caller is outside the "
            "rollout (null: no variants)."
        ),
    )
    weights: Mapped[dict[str, int]] = mapped_column(
        JSONB,
        server_default=text("'{}'::jsonb"),
        comment=(
            "Optional variant name -> percentage (integers adding up to 100): each "
            "signed-in caller gets the variant its sticky bucket falls in. Empty: "
            "default_variant for everyone the flag is on for."
        ),
    )
    created_by: Mapped[str] = mapped_column(
        Text,
        comment="Who created the row: user email, script:<os user>, or the database role.",
    )
    updated_by: Mapped[str] = mapped_column(
        Text, comment="Who changed the row last (same forms as created_by; set by a trigger)."
    )


class FeatureFlagHistory(Base):
    """One row per change of a flag, written by a trigger; never updated or deleted."""

    __tablename__ = "feature_flag_history"
    __table_args__ = (
        CheckConstraint("action IN ('created', 'updated', 'deleted')", name="action_kind"),
        Index("ix_feature_flag_history_codename_id", "codename", "id"),
        {
            "comment": (
                "Append-only audit trail of feature_flags, written by a trigger for every "
                "INSERT, UPDATE and DELETE (API, scripts and psql alike)."
            )
        },
    )

    id: Mapped[int] = mapped_column(
        BigInteger, Identity(), primary_key=True, comment="Order of the changes."
    )
    codename: Mapped[str] = mapped_column(
        String(CODENAME_MAX_LENGTH), comment="The flag that changed (kept after it is deleted)."
    )
    action: Mapped[str] = mapped_column(String(10), comment="created, updated or deleted.")
    old_values: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB, comment="The flag before the change (null for created)."
    )
    new_values: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB, comment="The flag after the change (null for deleted)."
    )
    actor: Mapped[str] = mapped_column(
        Text,
        comment="Who changed it: user email (API), script:<os user>, else the database role.",
    )
    changed_on: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), comment="When the change happened."
    )
