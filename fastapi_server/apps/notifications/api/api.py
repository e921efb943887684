"""HTTP endpoints of the notifications app."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["notifications"])
