"""Settings shared by every app; each app reads its own in ``apps/<app>/settings.py``."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fastapi_server.lib.database_url import to_asyncpg_dsn

ENV_FILE = ".env"


class Settings(BaseSettings):
    """Environment-wide settings, from the environment or a ``.env`` file."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset means the local embedded server (manage.py serve).",
    )
    # Connections each process keeps open. No overflow by default: overflow connections
    # are closed again as soon as they are returned, so under steady load above the pool
    # size every request would pay a new connection (TCP, authentication, type lookups);
    # a request waits up to DB_POOL_TIMEOUT for a pooled one instead.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout: float = Field(default=10.0, gt=0)
    # Off by default: a ping costs three extra round trips on every checkout, and a
    # connection the server closed is detected and the pool refreshed on first use anyway.
    # Turn on where a proxy or firewall silently drops idle connections.
    db_pool_pre_ping: bool = False
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    cors_origins: str = Field(default="", description="Comma-separated origins allowed by CORS.")
    log_level: str = "INFO"
    log_format: Literal["json", "text", ""] = ""
    telemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry spans, metrics and logs, sent to the "
        "globally configured providers. Off: nothing is checked per request.",
    )
    app_url: str = Field(default="http://localhost:3000", description="The web front end's URL.")
    metrics_enabled: bool = Field(
        default=False,
        description="Serve GET /metrics (Prometheus) and count every request. Keep /metrics "
        "off the public route at the proxy (docs/operations.md).",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        to_asyncpg_dsn(value)  # raises a clear error on a malformed URL
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def effective_log_format(self) -> str:
        """JSON lines in production, readable lines elsewhere, unless LOG_FORMAT says."""
        if self.log_format:
            return self.log_format
        return "json" if self.env == "production" else "text"


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()


def describe_settings_error(exc: ValidationError) -> str:
    """One line naming each bad setting and why, for command-line tools."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']).upper()}: "
        f"{error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors()
    )
