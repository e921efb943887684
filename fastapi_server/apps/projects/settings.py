"""Settings of the projects app (``PROJECTS_*``); none yet, the place for them."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ProjectsSettings(BaseSettings):
    """The projects app's settings, read from ``PROJECTS_*`` variables (or ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="PROJECTS_", env_file=".env", extra="ignore")


@lru_cache
def get_projects_settings() -> ProjectsSettings:
    """The process's projects settings, read once."""
    return ProjectsSettings()
