"""How a built message leaves: ``console`` (logged, for development) or ``smtp``."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from fastapi_server.apps.notifications.settings import NotificationsSettings

logger = logging.getLogger(__name__)


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
