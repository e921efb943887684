"""Tables of the todos app: todos, each of one owner and optionally of one project.

A todo goes with its owner's account and with its project (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from fastapi_server.lib.ids import uuid7
from fastapi_server.resources.database.base import AuditMixin, Base

TITLE_MAX_LENGTH = 500
DESCRIPTION_MAX_LENGTH = 10_000


class Todo(AuditMixin, Base):
    """Something to do: its owner edits it; in a project, its members see and toggle it."""

    __tablename__ = "todos"
    __table_args__ = (
        CheckConstraint(
            f"char_length(title) BETWEEN 1 AND {TITLE_MAX_LENGTH}", name="title_length"
        ),
        CheckConstraint(
            "(completed_on IS NULL) = (completed_by IS NULL)", name="completed_together"
        ),
        # One index per list and order (GET /todos/todos, GET /todos/projects/{id}); the
        # id ends each, as it ends each order.
        Index("ix_todos_owner_created_on_id", "owner", "created_on", "id"),
        Index("ix_todos_owner_title_id", "owner", "title", "id"),
        Index("ix_todos_project_id_created_on_id", "project_id", "created_on", "id"),
        Index("ix_todos_project_id_title_id", "project_id", "title", "id"),
        {"comment": "Todos: owned by one user, optionally shared with a project's members."},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        primary_key=True,
        default=uuid7,
        server_default=func.gen_random_uuid(),
        comment="The todo's id (UUIDv7 from the API, random when inserted by hand).",
    )
    title: Mapped[str] = mapped_column(
        String(TITLE_MAX_LENGTH), comment="What to do, 1 to 500 characters."
    )
    description: Mapped[str | None] = mapped_column(Text, comment="Details (optional).")
    owner: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"),
        comment="Id of the user the todo belongs to (deleting the account deletes it).",
    )
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"),
        comment="The project it is shared with (deleting the project deletes it); NULL: "
        "private to its owner.",
    )
    completed_on: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="When it was marked done; NULL while open."
    )
    completed_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, comment="Id of the user who marked it done (not a foreign key); NULL while open."
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, comment="Id of the user who created the todo (not a foreign key)."
    )
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, comment="Id of the user who changed the todo last (not a foreign key)."
    )
