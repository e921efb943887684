"""Input types shared by the apps' schemas."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field


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


# The same rules as JSON Schema patterns, so OpenAPI (and clients generated from it) know
# them: no C0/C1 control character but tab and line breaks (SafeStr), nor line breaks
# (SafeLine). Surrogates cannot occur in valid JSON text once decoded.
SAFE_STR_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
SAFE_LINE_PATTERN = "^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f]*$"

SafeStr = Annotated[
    str, AfterValidator(_printable), Field(json_schema_extra={"pattern": SAFE_STR_PATTERN})
]
"""A ``str`` without control characters or unpaired surrogates."""


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line")
    return value


SafeLine = Annotated[
    SafeStr, AfterValidator(_one_line), Field(json_schema_extra={"pattern": SAFE_LINE_PATTERN})
]
"""A ``SafeStr`` on one line (names, labels, subjects)."""
