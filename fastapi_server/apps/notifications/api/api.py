"""HTTP endpoints of the notifications app."""

from __future__ import annotations

from fastapi_server.resources.http import APIRouter

router = APIRouter(tags=["notifications"])
