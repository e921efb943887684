"""How a built message leaves: ``console`` (logged, for development) or ``smtp``."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
from opentelemetry import trace

from fastapi_server.apps.notifications.settings import NotificationsSettings

logger = logging.getLogger(__name__)


class ConsoleTransportInProduction(RuntimeError):
    """A production worker would write every email (codes, reset links) to the logs."""


def check_transport(env: str, settings: NotificationsSettings) -> None:
    """Refuse the console transport in production unless explicitly allowed."""
    if env == "production" and settings.transport == "console":
        if not settings.allow_console_in_production:
            raise ConsoleTransportInProduction(
                "refusing to start a delivery worker with ENV=production and "
                "NOTIFICATIONS_TRANSPORT=console: every email, verification codes and "
                "password reset links included, would be written to the logs and none "
                "sent. Set NOTIFICATIONS_TRANSPORT=smtp and NOTIFICATIONS_SMTP_*, or "
                "NOTIFICATIONS_ALLOW_CONSOLE_IN_PRODUCTION=true if that is really wanted"
            )
        logger.warning(
            "ENV=production with NOTIFICATIONS_TRANSPORT=console "
            "(NOTIFICATIONS_ALLOW_CONSOLE_IN_PRODUCTION): emails go to the logs, not to people"
        )


_tracer = trace.get_tracer(__name__)


class Transport(Protocol):
    """Sends one message to one recipient; raises on any failure (the worker retries)."""

    async def send(self, email: EmailMessage, *, sender: str, recipient: str) -> None: ...


class ConsoleTransport:
    """Logs the message (headers and text part) instead of sending it."""

    async def send(self, email: EmailMessage, *, sender: str, recipient: str) -> None:
        text_part = email.get_body(preferencelist=("plain",))
        text = text_part.get_content() if text_part is not None else ""
        headers = "\n".join(f"{name}: {value}" for name, value in email.items())
        logger.info(
            "email not sent (NOTIFICATIONS_TRANSPORT=console); it would be:\n%s\n\n%s",
            headers,
            text,
        )


class SMTPTransport:
    """Sends through an SMTP server with aiosmtplib (one connection per message).

    ``smtp_timeout_seconds`` bounds the whole conversation (aiosmtplib's own timeout
    applies per command), so a send never outlasts the worker's lease on the message.
    """

    def __init__(self, settings: NotificationsSettings) -> None:
        self.settings = settings

    async def send(self, email: EmailMessage, *, sender: str, recipient: str) -> None:
        settings = self.settings
        password = settings.smtp_password.get_secret_value()
        # A client span when traces are exported (resources/tracing.py); else a no-op.
        attributes: dict[str, str | int] = {
            "server.address": settings.smtp_host,
            "server.port": settings.smtp_port,
        }
        with _tracer.start_as_current_span(
            "smtp send", kind=trace.SpanKind.CLIENT, attributes=attributes
        ):
            await self._send(email, sender, recipient, password)

    async def _send(self, email: EmailMessage, sender: str, recipient: str, password: str) -> None:
        settings = self.settings
        async with asyncio.timeout(settings.smtp_timeout_seconds):
            await aiosmtplib.send(
                email,
                sender=sender,
                recipients=[recipient],  # the envelope: never taken from headers
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username or None,
                password=password if settings.smtp_username else None,
                use_tls=settings.smtp_tls == "tls",
                start_tls=settings.smtp_tls == "starttls",
                timeout=settings.smtp_timeout_seconds,
            )


def transport_from_settings(settings: NotificationsSettings) -> Transport:
    """The transport ``NOTIFICATIONS_TRANSPORT`` names."""
    if settings.transport == "smtp":
        return SMTPTransport(settings)
    return ConsoleTransport()
