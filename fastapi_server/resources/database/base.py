"""The declarative base every app's models share, and the audit columns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations can name what they drop.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every model; its metadata is what Alembic compares with the database."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AuditMixin:
    """``created_on``/``updated_on`` kept by the database itself.

    ``updated_on`` is set by the ``set_updated_on()`` trigger (migration 0001), so it
    moves on raw SQL updates from psql as well as on ORM ones; each table's migration
    attaches the trigger with ``migrations.helpers.add_updated_on_trigger``.
    """

    created_on: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), comment="When the row was created."
    )
    updated_on: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.now(),
        comment="When the row last changed (set by a trigger on every UPDATE).",
    )
