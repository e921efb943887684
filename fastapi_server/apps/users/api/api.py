"""HTTP endpoints of the users app."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["users"])
