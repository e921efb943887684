"""Settings of the todos app (``TODOS_*``); none yet, the place for them."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class TodosSettings(BaseSettings):
    """The todos app's settings, read from ``TODOS_*`` variables (or ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="TODOS_", env_file=".env", extra="ignore")


@lru_cache
def get_todos_settings() -> TodosSettings:
    """The process's todos settings, read once."""
    return TodosSettings()
