"""Settings of the notifications app (``NOTIFICATIONS_*``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fastapi_server.apps.notifications.addresses import checked_address
from fastapi_server.apps.notifications.rendering import check_subject
from fastapi_server.config import ENV_FILE
from fastapi_server.lib.validation import SafeLine


class NotificationsSettings(BaseSettings):
    """How email is rendered, sent and retried."""

    model_config = SettingsConfigDict(
        env_prefix="NOTIFICATIONS_", env_file=ENV_FILE, extra="ignore"
    )

    transport: Literal["console", "smtp"] = Field(
        default="console",
        description="console logs each message (development); smtp sends it.",
    )
    allow_console_in_production: bool = Field(
        default=False,
        description="Let a worker start with ENV=production and the console transport "
        "(which writes verification codes and reset links to the logs).",
    )
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Longest one message may take, connect to accepted."
    )
    # Header values: refused at start if they are not one clean line (or one plain address).
    from_email: Annotated[SafeLine, AfterValidator(checked_address)] = "no-reply@example.com"
    from_name: SafeLine = "FastAPI platform"
    app_name: SafeLine = Field(
        default="FastAPI platform", description="Shown in subjects and layout."
    )
    subjects: dict[str, SafeLine] = Field(
        default_factory=dict,
        description="Subject per template, replacing the default: a JSON object such as "
        '{"welcome": "Welcome aboard, {{ first_name }}"} (Jinja, one line).',
    )
    login_path: str = Field(
        default="/login", description="Front end's login page (under APP_URL), linked from emails."
    )
    forgot_password_path: str = Field(
        default="/forgot-password",
        description="Front end's page that asks for a reset link (under APP_URL), linked "
        "from emails.",
    )
    max_attempts: int = Field(default=8, ge=1)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    worker_in_process: bool = True
    poll_seconds: float = Field(default=5.0, gt=0)
    lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long a worker holds a message; renewed right before each send.",
    )
    batch_size: int = Field(default=20, ge=1)

    @field_validator("subjects")
    @classmethod
    def _check_subjects(cls, subjects: dict[str, str]) -> dict[str, str]:
        for name, subject in subjects.items():
            check_subject(name, subject)
        return subjects

    @model_validator(mode="after")
    def _lease_covers_a_send(self) -> NotificationsSettings:
        # The lease is renewed right before each send; the send must end before it runs
        # out, or another worker may take the message over and send it again.
        if self.lease_seconds < 2 * self.smtp_timeout_seconds:
            raise ValueError(
                f"NOTIFICATIONS_LEASE_SECONDS ({self.lease_seconds:g}) must be at least twice "
                f"NOTIFICATIONS_SMTP_TIMEOUT_SECONDS ({self.smtp_timeout_seconds:g}): a send "
                "that outlasts its lease may be repeated by another worker"
            )
        return self

    def backoff_seconds(self, attempts: int) -> float:
        """Wait before the next try after ``attempts`` failed ones: doubling, capped."""
        exponent = max(attempts - 1, 0)
        if exponent >= 64:  # 2**64 * base is far past any cap
            return self.retry_max_seconds
        return float(min(self.retry_base_seconds * 2**exponent, self.retry_max_seconds))


@lru_cache
def get_notifications_settings() -> NotificationsSettings:
    """The process's notifications settings, read once."""
    return NotificationsSettings()
