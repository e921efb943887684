"""Settings of the users app: ``USERS_*`` environment variables (or ``.env``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fastapi_server.config import ENV_FILE

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")

# Placeholders that must never sign tokens in production (the dev defaults among them).
DEV_SECRET = "dev-only-insecure-secret-change-me-0123456789"  # noqa: S105 -- a known placeholder
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        DEV_SECRET,
        "changeme",
        "change-me",
        "changethis",
        "secret",
        "secret-key",
        "your-secret-key",
        "SECRET",
        "CHANGE_ME",
    }
)
MIN_SECRET_LENGTH = 32


MAX_DEFAULT_HASHING_THREADS = 4


def default_hashing_threads(cpu_count: int | None) -> int:
    """Per process: one core short of all of them, at least 1, at most 4. With several
    workers their threads together may outnumber the cores: niceness keeps them behind
    request handling (``hashing_niceness``)."""
    return min(MAX_DEFAULT_HASHING_THREADS, max(1, (cpu_count or 1) - 1))


class UsersSettings(BaseSettings):
    """Tokens, lockout, password hashing and the dev switches of the users app."""

    model_config = SettingsConfigDict(env_prefix="USERS_", env_file=ENV_FILE, extra="ignore")

    # Secrets (HS256). Distinct secrets per purpose: a leaked reset secret cannot mint
    # access tokens. Production refuses empty, short and known placeholder values.
    jwt_secret: str = Field(default=DEV_SECRET, description="Signs access and refresh tokens.")
    jwt_secret_previous: str = Field(
        default="",
        description="The USERS_JWT_SECRET before the last rotation: tokens signed with it "
        "(their header's kid names it) still verify, so a rotation logs nobody out. "
        "Empty: none. Remove it once the longest refresh token lifetime has passed.",
    )
    verification_token_secret: str = Field(
        default=DEV_SECRET, description="Signs verification tokens and the codes' HMACs."
    )
    reset_password_token_secret: str = Field(
        default=DEV_SECRET, description="Signs password reset tokens."
    )

    access_token_lifetime_seconds: int = Field(default=900, ge=60)
    refresh_token_lifetime_seconds: int = Field(default=14 * 24 * 3600, ge=300)
    refresh_reuse_grace_seconds: int = Field(
        default=10,
        ge=0,
        le=60,
        description="A refresh token presented again this soon after its rotation (two "
        "tabs refreshing at once) gets a fresh pair of its family instead of revoking it.",
    )
    verification_code_lifetime_seconds: int = Field(default=600, ge=60, le=600)
    reset_password_token_lifetime_seconds: int = Field(default=3600, ge=60, le=3600)

    verification_max_attempts: int = Field(
        default=5, ge=1, description="Wrong codes accepted before a verification code dies."
    )
    verification_codes_per_hour: int = Field(
        default=5, ge=1, description="Codes one account may request per hour."
    )

    max_failed_logins: int = Field(default=5, ge=1)
    lockout_seconds: int = Field(default=300, ge=1)
    lockout_max_seconds: int = Field(default=24 * 3600, ge=1)
    login_failure_decay_seconds: int = Field(
        default=900,
        ge=1,
        description="A failed login this long after the previous one starts the count "
        "again, so a trickle of failures cannot keep an account locked.",
    )

    # Rate limits, counted in PostgreSQL (shared by every worker and instance).
    rate_limits_enabled: bool = Field(default=True, description="Off: no rate limit at all.")
    rate_limit_per_ip: int = Field(
        default=30,
        ge=1,
        description="Requests one client IP may make to each of POST /login (with "
        "/users/login), /register, /auth/request-verification-token, /auth/verify and "
        "/auth/forgot-password per USERS_RATE_LIMIT_IP_WINDOW_SECONDS.",
    )
    rate_limit_ip_window_seconds: int = Field(default=60, ge=1)
    rate_limit_login_per_email: int = Field(
        default=10, ge=1, description="Logins one email may attempt per minute."
    )
    rate_limit_register_per_email: int = Field(
        default=5, ge=1, description="Registrations of one email per hour."
    )
    rate_limit_verify_per_account: int = Field(
        default=10, ge=1, description="Verification attempts on one account per minute."
    )
    rate_limit_emails_per_address: int = Field(
        default=5,
        ge=1,
        description="Requests for a code or a reset link per address per hour (each kind).",
    )
    hashing_queue_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Longest wait for a password hashing turn; past it, the request "
        "answers 503 HASHING_BUSY with Retry-After.",
    )

    registration_default: bool = Field(
        default=True, description="Registration is open when FF_ENABLE_REGISTRATION is absent."
    )

    # Dev/test switches: hand secrets to the client instead of only emailing them.
    return_verification_tokens: bool = False
    return_forgot_password_token: bool = False

    # Argon2id cost: OWASP's recommendation (19 MiB, 2 passes, 1 lane). One lane, so a
    # hash keeps one core busy rather than all of them (see default_hashing_threads).
    # Tests lower it.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19456, ge=8)
    argon2_parallelism: int = Field(default=1, ge=1)
    hashing_threads: int = Field(
        default_factory=lambda: default_hashing_threads(os.cpu_count()),
        ge=1,
        description="Threads that hash passwords (each argon2 hash holds its memory cost).",
    )
    hashing_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness of the hashing threads (Linux): above 0 they yield the CPU to "
        "request handling when both want it, so a login storm slows logins, not the rest.",
    )

    password_min_length: int = Field(default=8, ge=8)
    common_passwords_file: Path = COMMON_PASSWORDS_FILE

    reset_password_path: str = Field(
        default="/forgot-password/reset",
        description="Front end page (under APP_URL) the reset email links to.",
    )
    reset_password_token_parameter: str = Field(
        default="reset_token",
        pattern=r"^[A-Za-z0-9_.~-]+$",
        description="Query parameter of that link that carries the reset token.",
    )

    def _secrets(self) -> dict[str, str]:
        return {
            "USERS_JWT_SECRET": self.jwt_secret,
            "USERS_VERIFICATION_TOKEN_SECRET": self.verification_token_secret,
            "USERS_RESET_PASSWORD_TOKEN_SECRET": self.reset_password_token_secret,
        }

    def shared_secrets(self) -> list[str]:
        """Names of the secrets whose value another one has too (each must differ: a
        leaked reset secret must not mint access tokens)."""
        values = list(self._secrets().values())
        return [name for name, value in self._secrets().items() if values.count(value) > 1]

    def dev_switches_on(self) -> list[str]:
        """Names of the dev/test switches that are on."""
        switches = {
            "USERS_RETURN_VERIFICATION_TOKENS": self.return_verification_tokens,
            "USERS_RETURN_FORGOT_PASSWORD_TOKEN": self.return_forgot_password_token,
        }
        return [name for name, on in switches.items() if on]

    def insecure_secrets(self) -> list[str]:
        """Names of the secrets that are empty, too short or a known placeholder."""
        secrets = self._secrets()
        if self.jwt_secret_previous:
            secrets["USERS_JWT_SECRET_PREVIOUS"] = self.jwt_secret_previous
        return [
            name
            for name, value in secrets.items()
            if len(value) < MIN_SECRET_LENGTH or value.strip() in KNOWN_DEFAULT_SECRETS
        ]


@lru_cache
def get_users_settings() -> UsersSettings:
    """The process's users settings, read once."""
    return UsersSettings()
