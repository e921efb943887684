"""The projects app's tables: projects and their members.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fastapi_server.migrations.helpers import add_updated_on_trigger, drop_updated_on_trigger

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _audit_columns(created_by: str, updated_by: str) -> list[sa.Column[object]]:
    return [
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
        sa.Column("created_by", sa.Uuid(), nullable=True, comment=created_by),
        sa.Column("updated_by", sa.Uuid(), nullable=True, comment=updated_by),
    ]


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column(
            "id",
            sa.Uuid(),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
            comment="The project's id (UUIDv7 from the API, random when inserted by hand).",
        ),
        sa.Column(
            "name",
            sa.String(length=200),
            nullable=False,
            comment="The project's name, 1 to 200 characters.",
        ),
        sa.Column(
            "description", sa.Text(), nullable=True, comment="What the project is about (optional)."
        ),
        *_audit_columns(
            "Id of the user who created the project (not a foreign key: kept after the "
            "account is deleted); NULL when inserted by hand.",
            "Id of the user who changed the project last (same rules as created_by).",
        ),
        sa.CheckConstraint(
            "char_length(name) BETWEEN 1 AND 200", name=op.f("ck_projects_name_length")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        comment="Projects: a group of users (project_members) sharing todos.",
    )
    op.create_index("ix_projects_created_on_id", "projects", ["created_on", "id"])
    op.create_index("ix_projects_name_id", "projects", ["name", "id"])
    add_updated_on_trigger("projects")

    op.create_table(
        "project_members",
        sa.Column(
            "project_id",
            sa.Uuid(),
            nullable=False,
            comment="The project (deleting it deletes its memberships).",
        ),
        sa.Column(
            "user_id",
            sa.Uuid(),
            nullable=False,
            comment="The member (deleting the account deletes its memberships).",
        ),
        sa.Column(
            "is_admin",
            sa.Boolean(),
            server_default=sa.false(),
            nullable=False,
            comment="Admins rename and delete the project, manage its members and edit its todos.",
        ),
        *_audit_columns(
            "Id of the user who added the member (not a foreign key).",
            "Id of the user who changed the membership last (not a foreign key).",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_members_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_project_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name=op.f("pk_project_members")),
        comment="Who belongs to which project. The API keeps at least one admin per project.",
    )
    op.create_index(
        "ix_project_members_user_id_project_id", "project_members", ["user_id", "project_id"]
    )
    op.create_index(
        "ix_project_members_project_id_created_on",
        "project_members",
        ["project_id", "created_on", "user_id"],
    )
    add_updated_on_trigger("project_members")


def downgrade() -> None:
    drop_updated_on_trigger("project_members")
    op.drop_table("project_members")
    drop_updated_on_trigger("projects")
    op.drop_table("projects")
