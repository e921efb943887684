"""HTTP endpoints of the feature flags app."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["feature flags"])
