"""Email in tests: a real SMTP server in the test process, and a look into the outbox.

``SMTPCatcher`` runs aiosmtpd on a free port (its own thread) and keeps every message it
receives. The delivery worker runs on the test's event loop, so wait with
``await catcher.wait_for(...)`` (it yields to the loop), never with a blocking sleep::

    catcher = SMTPCatcher()
    catcher.start()
    ...
    message = await catcher.wait_for("ada@example.com")
    code = text_body(message)
    catcher.stop()

``outbox_for`` reads what was queued in the (rolled-back) test transaction, for tests
that never deliver.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from aiosmtpd.controller import Controller

from fastapi_server.apps.notifications.rendering import fill_secrets
from fastapi_server.apps.notifications.schemas import OutboxMessageView
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.processes import free_port


@dataclass(frozen=True)
class Envelope:
    """What the SMTP conversation said, apart from the message's headers."""

    mail_from: str
    rcpt_tos: tuple[str, ...]


class _Handler:
    def __init__(self, catcher: SMTPCatcher) -> None:
        self.catcher = catcher

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.catcher.lock:
            self.catcher.messages.append(message)
            self.catcher.envelopes.append(Envelope(envelope.mail_from, tuple(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class _SlowHandler(_Handler):
    """Answers MAIL, RCPT and DATA only after ``delay`` seconds each (a sluggish server)."""

    def __init__(self, catcher: SMTPCatcher, delay: float) -> None:
        super().__init__(catcher)
        self.delay = delay

    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(self.delay)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(self.delay)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


class SMTPCatcher:
    """An in-process SMTP server on a free port that keeps what it receives.

    ``stop()`` closes the port (senders get "connection refused"); ``start()`` opens the
    same port again. ``messages`` and ``envelopes`` survive a restart. With
    ``reply_delay_seconds``, MAIL, RCPT and DATA are each answered that much later.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, reply_delay_seconds: float = 0
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.reply_delay_seconds = reply_delay_seconds
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> SMTPCatcher:
        if self._controller is None:
            handler = (
                _SlowHandler(self, self.reply_delay_seconds)
                if self.reply_delay_seconds
                else _Handler(self)
            )
            controller = Controller(handler, hostname=self.host, port=self.port)
            controller.start()
            self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SMTPCatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def to(self, address: str) -> list[EmailMessage]:
        """Messages whose To header names ``address`` (case-insensitive)."""
        wanted = address.lower()
        with self.lock:
            return [
                message
                for message in self.messages
                if any(
                    addr.lower() == wanted for _, addr in getaddresses(message.get_all("To", []))
                )
            ]

    # The agreed helper signature takes a timeout (simpler for callers than asyncio.timeout).
    async def wait_for(
        self,
        to: str,
        timeout: float = 5,  # noqa: ASYNC109
        count: int = 1,
    ) -> EmailMessage:
        """The ``count``-th message to ``to``, once it arrived (TimeoutError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            received = self.to(to)
            if len(received) >= count:
                return received[count - 1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no email #{count} to {to} within {timeout}s")
            await asyncio.sleep(0.02)

    async def wait_for_count(
        self,
        count: int,
        timeout: float = 10,  # noqa: ASYNC109
    ) -> list[EmailMessage]:
        """All messages, once at least ``count`` arrived."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.messages)} of {count} emails within {timeout}s")
            await asyncio.sleep(0.02)
        with self.lock:
            return list(self.messages)


def text_body(message: EmailMessage) -> str:
    """The plain-text part of a received message."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "message has no text/plain part"
    content: str = part.get_content()
    return content


def html_body(message: EmailMessage) -> str:
    """The HTML part of a received message."""
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "message has no text/html part"
    content: str = part.get_content()
    return content


async def outbox_for(dbs: Databases, to_email: str) -> list[OutboxMessageView]:
    """Messages queued for ``to_email`` on this session, oldest first, as the worker sends
    them: secrets (codes, reset links) filled into the stored bodies."""
    rows = await dbs.notifications.for_recipient(to_email)
    views = []
    for row in rows:
        secrets = row.secrets or {}
        views.append(
            OutboxMessageView.model_validate(row).model_copy(
                update={
                    "body_text": fill_secrets(row.body_text, secrets, html=False),
                    "body_html": fill_secrets(row.body_html, secrets, html=True),
                }
            )
        )
    return views
