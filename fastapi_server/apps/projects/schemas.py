"""Request and response bodies of the projects app."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from fastapi_server.apps.projects.models import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH
from fastapi_server.lib.validation import SafeLine, SafeStr

Name = Annotated[SafeLine, Field(min_length=1, max_length=NAME_MAX_LENGTH, examples=["Garden"])]
Description = Annotated[
    SafeStr, Field(max_length=DESCRIPTION_MAX_LENGTH, examples=["Spring planting"])
]


class ProjectOrder(StrEnum):
    """Sort keys of the project lists."""

    CREATED_ON = "created_on"
    NAME = "name"


class MemberOrder(StrEnum):
    """Sort keys of a project's member list."""

    CREATED_ON = "created_on"


class ProjectCreate(BaseModel):
    """A new project; its creator becomes its first admin."""

    name: Name
    description: Description | None = None


class ProjectUpdate(BaseModel):
    """The fields to change; those left out keep their value. ``description`` may be
    null (no description); ``name`` may not."""

    name: Name | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _name_not_null(self) -> Self:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null; leave it out instead")
        return self

    def changes(self) -> dict[str, Any]:
        """Only what the caller sent."""
        return self.model_dump(exclude_unset=True)


class ProjectRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    created_by: uuid.UUID | None
    created_on: datetime
    updated_by: uuid.UUID | None
    updated_on: datetime


class ProjectMemberRead(BaseModel):
    """A membership; ``user_id`` is the ``member_id`` of the member endpoints."""

    model_config = ConfigDict(from_attributes=True)

    project_id: uuid.UUID
    user_id: uuid.UUID
    is_admin: bool
    created_by: uuid.UUID | None
    created_on: datetime
    updated_by: uuid.UUID | None
    updated_on: datetime


class ProjectCreated(BaseModel):
    """A new project and its creator's (admin) membership."""

    project: ProjectRead
    project_member: ProjectMemberRead


class MemberCreate(BaseModel):
    """Add the active user with this email (any case) to the project."""

    user_email: EmailStr = Field(examples=["grace@example.org"])
    is_admin: bool = False


class MemberUpdate(BaseModel):
    is_admin: bool
