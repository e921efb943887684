"""Turn an outbox row into an RFC 5322 message, with header values that cannot inject."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime

from fastapi_server.apps.notifications.rendering import one_line
from fastapi_server.apps.notifications.schemas import ClaimedMessage
from fastapi_server.apps.notifications.settings import NotificationsSettings


def message_id_header(message_id: object, from_email: str) -> str:
    """``<outbox-row-id@sender-domain>``: the same for every retry of one message."""
    domain = from_email.rpartition("@")[2] or "localhost"
    return f"<{message_id}@{domain}>"


def build_email(message: ClaimedMessage, settings: NotificationsSettings) -> EmailMessage:
    """The email for an outbox row; ValueError if an address cannot be used.

    Every header value goes through ``one_line`` (CR, LF and other control characters
    become spaces) and addresses through ``email.headerregistry.Address``, so a name or
    subject can never start a header of its own; the rows are re-checked here because
    anyone with psql can write to the outbox.
    """
    email = EmailMessage()
    email["Subject"] = one_line(message.subject)
    email["From"] = Address(
        display_name=one_line(settings.from_name), addr_spec=one_line(settings.from_email)
    )
    email["To"] = Address(
        display_name=one_line(message.to_name), addr_spec=one_line(message.to_email)
    )
    email["Date"] = format_datetime(localtime())
    email["Message-ID"] = message_id_header(message.id, settings.from_email)
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(message.body_text)
    email.add_alternative(message.body_html, subtype="html")
    return email
