"""HTTP endpoints of the notifications app."""

from __future__ import annotations

from fastapi import APIRouter

from fastapi_server.resources.database.databases import DatabaseRoute

router = APIRouter(tags=["notifications"], route_class=DatabaseRoute)
