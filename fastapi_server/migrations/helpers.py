"""Statements several migrations share."""

from __future__ import annotations

from alembic import op


def add_updated_on_trigger(table: str) -> None:
    """Keep ``table.updated_on`` current on every UPDATE, raw SQL included."""
    op.execute(
        f"CREATE TRIGGER {table}_set_updated_on BEFORE UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_on()"
    )


def drop_updated_on_trigger(table: str) -> None:
    """Undo ``add_updated_on_trigger``."""
    op.execute(f"DROP TRIGGER IF EXISTS {table}_set_updated_on ON {table}")
