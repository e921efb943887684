"""The todos app's table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fastapi_server.migrations.helpers import add_updated_on_trigger, drop_updated_on_trigger

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "todos",
        sa.Column(
            "id",
            sa.Uuid(),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
            comment="The todo's id (UUIDv7 from the API, random when inserted by hand).",
        ),
        sa.Column(
            "title",
            sa.String(length=500),
            nullable=False,
            comment="What to do, 1 to 500 characters.",
        ),
        sa.Column("description", sa.Text(), nullable=True, comment="Details (optional)."),
        sa.Column(
            "owner",
            sa.Uuid(),
            nullable=False,
            comment="Id of the user the todo belongs to (deleting the account deletes it).",
        ),
        sa.Column(
            "project_id",
            sa.Uuid(),
            nullable=True,
            comment="The project it is shared with (deleting the project deletes it); NULL: "
            "private to its owner.",
        ),
        sa.Column(
            "completed_on",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When it was marked done; NULL while open.",
        ),
        sa.Column(
            "completed_by",
            sa.Uuid(),
            nullable=True,
            comment="Id of the user who marked it done (not a foreign key); NULL while open.",
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
        sa.Column(
            "created_by",
            sa.Uuid(),
            nullable=True,
            comment="Id of the user who created the todo (not a foreign key).",
        ),
        sa.Column(
            "updated_by",
            sa.Uuid(),
            nullable=True,
            comment="Id of the user who changed the todo last (not a foreign key).",
        ),
        sa.CheckConstraint(
            "char_length(title) BETWEEN 1 AND 500", name=op.f("ck_todos_title_length")
        ),
        sa.CheckConstraint(
            "(completed_on IS NULL) = (completed_by IS NULL)",
            name=op.f("ck_todos_completed_together"),
        ),
        sa.ForeignKeyConstraint(
            ["owner"], ["users.id"], name=op.f("fk_todos_owner_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_todos_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_todos")),
        comment="Todos: owned by one user, optionally shared with a project's members.",
    )
    # One index per list and order; the id ends each, as it ends each order.
    op.create_index("ix_todos_owner_created_on_id", "todos", ["owner", "created_on", "id"])
    op.create_index("ix_todos_owner_title_id", "todos", ["owner", "title", "id"])
    op.create_index(
        "ix_todos_project_id_created_on_id", "todos", ["project_id", "created_on", "id"]
    )
    op.create_index("ix_todos_project_id_title_id", "todos", ["project_id", "title", "id"])
    add_updated_on_trigger("todos")


def downgrade() -> None:
    drop_updated_on_trigger("todos")
    op.drop_table("todos")
