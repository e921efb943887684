"""Settings shared by every app; each app reads its own in ``apps/<app>/settings.py``."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
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
    database_listen_url: str | None = Field(
        default=None,
        description="PostgreSQL URL for the LISTEN connections (flag cache, delivery "
        "workers), straight to the server: LISTEN needs a session of its own, which a "
        "pooler in transaction mode does not give. Unset: DATABASE_URL.",
    )
    db_pgbouncer: bool = Field(
        default=False,
        description="DATABASE_URL goes through PgBouncer in transaction pooling mode: no "
        "named prepared statements, and the statement timeout is set per transaction.",
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
    shutdown_drain_seconds: float = Field(
        default=0,
        ge=0,
        description="After SIGTERM, how long /_ready answers 503 while requests are still "
        "served, before the server stops accepting (resources/drain.py). 0: stop at once.",
    )
    cors_origins: str = Field(default="", description="Comma-separated origins allowed by CORS.")
    cors_allow_credentials: bool = Field(
        default=False,
        description="Let browsers send cookies and HTTP auth cross-origin. Off: the API "
        "takes Bearer tokens, which need none. Refused together with a `*` origin.",
    )
    docs_enabled: bool = Field(
        default=True, description="Serve /docs, /redoc and /openapi.json (off: 404)."
    )
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

    @field_validator("database_url", "database_listen_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        to_asyncpg_dsn(value)  # raises a clear error on a malformed URL
        return value

    @model_validator(mode="after")
    def _no_credentials_for_any_origin(self) -> Settings:
        if self.cors_allow_credentials and "*" in self.cors_origin_list:
            raise ValueError(
                "CORS_ALLOW_CREDENTIALS=true with CORS_ORIGINS='*' would let every site "
                "make credentialed requests: list the origins instead"
            )
        return self

    @model_validator(mode="after")
    def _listen_past_the_pooler(self) -> Settings:
        # Through transaction pooling, LISTEN would register on whichever server connection
        # the statement happened to get, and the notices would never arrive.
        if self.db_pgbouncer and self.database_url and not self.database_listen_url:
            raise ValueError(
                "DB_PGBOUNCER=true needs DATABASE_LISTEN_URL, a direct URL to PostgreSQL "
                "for the LISTEN connections (LISTEN does not work through transaction pooling)"
            )
        return self

    @property
    def listen_url(self) -> str | None:
        """Where the LISTEN connections go: DATABASE_LISTEN_URL, else DATABASE_URL."""
        return self.database_listen_url or self.database_url

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
