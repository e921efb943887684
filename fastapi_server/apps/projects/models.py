"""Tables of the projects app: projects and their members.

Deleting a project deletes its memberships and its todos with it (``ON DELETE CASCADE``),
in the same transaction; deleting a user deletes their memberships.
"""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, Uuid, false, func
from sqlalchemy.orm import Mapped, mapped_column

from fastapi_server.lib.ids import uuid7
from fastapi_server.resources.database.base import AuditMixin, Base

NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 10_000


class Project(AuditMixin, Base):
    """Shared work: its members see it and its todos."""

    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint(f"char_length(name) BETWEEN 1 AND {NAME_MAX_LENGTH}", name="name_length"),
        Index("ix_projects_created_on_id", "created_on", "id"),
        Index("ix_projects_name_id", "name", "id"),
        {"comment": "Projects: a group of users (project_members) sharing todos."},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        primary_key=True,
        default=uuid7,
        server_default=func.gen_random_uuid(),
        comment="The project's id (UUIDv7 from the API, random when inserted by hand).",
    )
    name: Mapped[str] = mapped_column(
        String(NAME_MAX_LENGTH), comment="The project's name, 1 to 200 characters."
    )
    description: Mapped[str | None] = mapped_column(
        Text, comment="What the project is about (optional)."
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid,
        comment="Id of the user who created the project (not a foreign key: kept after the "
        "account is deleted); NULL when inserted by hand.",
    )
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, comment="Id of the user who changed the project last (same rules as created_by)."
    )


class ProjectMember(AuditMixin, Base):
    """A user's membership of a project; admins manage the project and its members."""

    __tablename__ = "project_members"
    __table_args__ = (
        Index("ix_project_members_user_id_project_id", "user_id", "project_id"),
        Index("ix_project_members_project_id_created_on", "project_id", "created_on", "user_id"),
        {
            "comment": (
                "Who belongs to which project. The API keeps at least one admin per project."
            )
        },
    )

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"),
        primary_key=True,
        comment="The project (deleting it deletes its memberships).",
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        comment="The member (deleting the account deletes its memberships).",
    )
    is_admin: Mapped[bool] = mapped_column(
        server_default=false(),
        comment="Admins rename and delete the project, manage its members and edit its todos.",
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, comment="Id of the user who added the member (not a foreign key)."
    )
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, comment="Id of the user who changed the membership last (not a foreign key)."
    )
