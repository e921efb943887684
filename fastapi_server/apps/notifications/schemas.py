"""Plain views of outbox rows, for the worker, scripts and tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class OutboxMessageView(BaseModel):
    """A queued (or sent) message as the outbox holds it."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: uuid.UUID
    template: str
    to_email: str
    to_name: str
    subject: str
    body_text: str
    body_html: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_on: datetime
    sent_on: datetime | None
    created_on: datetime


@dataclass(frozen=True)
class ClaimedMessage:
    """A message a worker holds a lease on; ``attempts`` fences its later updates."""

    id: uuid.UUID
    to_email: str
    to_name: str
    subject: str
    body_text: str
    body_html: str
    attempts: int


@dataclass(frozen=True)
class RequeueResult:
    """What ``core.requeue`` put back in line."""

    pending: int
    stuck: int
    failed: int
