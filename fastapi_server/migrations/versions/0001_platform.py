"""Platform: the trigger function that keeps ``updated_on`` current.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION set_updated_on() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_on := now();
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        "COMMENT ON FUNCTION set_updated_on() IS "
        "'Trigger function: sets updated_on to now() on every UPDATE (ORM, scripts or psql).'"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION set_updated_on()")
