"""Input types shared by the apps' schemas."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator


def _printable(value: str) -> str:
    """Refuse control characters (NUL, escape codes...) and unpaired surrogates.

    PostgreSQL cannot store NUL in text, and control characters have no place in a name,
    a label or an email; rejecting them here answers 422 instead of failing in the
    database. Tabs and newlines are allowed (descriptions may have several lines).
    """
    for char in value:
        category = unicodedata.category(char)
        if (category == "Cc" and char not in "\t\n\r") or category == "Cs":
            raise ValueError("must not contain control characters")
    return value


SafeStr = Annotated[str, AfterValidator(_printable)]
"""A ``str`` without control characters or unpaired surrogates."""


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line")
    return value


SafeLine = Annotated[SafeStr, AfterValidator(_one_line)]
"""A ``SafeStr`` on one line (names, labels, subjects)."""
