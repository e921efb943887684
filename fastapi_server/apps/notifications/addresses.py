"""Email addresses the notifications app accepts: one plain address, nothing more."""

from __future__ import annotations

from email.headerregistry import Address


def checked_address(address: str) -> str:
    """``address`` if it is one plain address (no name, no CR/LF), else ValueError."""
    value = address.strip()
    if not value or any(ch in value for ch in '\r\n\t <>,;"') or "@" not in value:
        raise ValueError(f"not a single plain email address: {address!r}")
    Address(addr_spec=value)  # raises ValueError on anything the email package cannot parse
    return value
