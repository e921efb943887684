"""Request and response bodies of the todos app."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fastapi_server.apps.todos.models import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH
from fastapi_server.lib.validation import SafeLine, SafeStr

Title = Annotated[
    SafeLine, Field(min_length=1, max_length=TITLE_MAX_LENGTH, examples=["Water the roses"])
]
Description = Annotated[SafeStr, Field(max_length=DESCRIPTION_MAX_LENGTH)]


class TodoOrder(StrEnum):
    """Sort keys of the todo lists."""

    CREATED_ON = "created_on"
    TITLE = "title"


class TodoCreate(BaseModel):
    """A new todo of the caller's; with ``project_id``, shared with that project
    (the caller must be a member)."""

    title: Title
    description: Description | None = None
    project_id: uuid.UUID | None = None


class TodoUpdate(BaseModel):
    """The fields to change; those left out keep their value. ``description`` may be
    null (no description); ``title`` may not."""

    title: Title | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _title_not_null(self) -> Self:
        if "title" in self.model_fields_set and self.title is None:
            raise ValueError("title cannot be null; leave it out instead")
        return self

    def changes(self) -> dict[str, Any]:
        """Only what the caller sent."""
        return self.model_dump(exclude_unset=True)


class TodoRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    owner: uuid.UUID
    project_id: uuid.UUID | None
    completed_on: datetime | None
    completed_by: uuid.UUID | None
    created_by: uuid.UUID | None
    created_on: datetime
    updated_by: uuid.UUID | None
    updated_on: datetime
