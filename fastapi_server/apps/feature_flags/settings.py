"""Settings of the feature flags app (``FEATURE_FLAGS_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class FeatureFlagsSettings(BaseSettings):
    """How each process keeps its flag cache fresh, and who may evaluate for anyone."""

    model_config = SettingsConfigDict(env_prefix="FEATURE_FLAGS_", env_file=".env", extra="ignore")

    refresh_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        description=(
            "While the LISTEN connection is down, reload every flag this often; while it is "
            "up, check that the connection is alive this often."
        ),
    )
    reconnect_max_backoff_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait between two attempts to reopen the LISTEN connection.",
    )
    connect_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Give up a connection attempt (or a reload query) after this long.",
    )

    ofrep_api_key: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "The service key a server-side OpenFeature (OFREP) client sends as X-API-Key to "
            "evaluate flags for any targetingKey. Empty (the default): no key is accepted. "
            "Use a long random value, e.g. secrets.token_urlsafe(48)."
        ),
    )


@lru_cache
def get_feature_flags_settings() -> FeatureFlagsSettings:
    """The process's feature flags settings, read once."""
    return FeatureFlagsSettings()
