"""Email templates: the registry, the Jinja2 environment and rendering.

Each template is a file pair in ``templates/`` (``<name>.html`` and ``<name>.txt``, both
extending the shared ``base.html``/``base.txt``) plus one ``EmailTemplate`` line below
(its subject and the context it needs). HTML is autoescaped; the text part is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.exceptions import UndefinedError

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# Any run of whitespace or control characters (CR, LF, NUL, ...) in a one-line header value.
_HEADER_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class EmailTemplate:
    """A template's subject (a Jinja string) and the context keys it requires."""

    name: str
    subject: str
    required: tuple[str, ...]


TEMPLATES: dict[str, EmailTemplate] = {
    template.name: template
    for template in (
        EmailTemplate(
            "registration_code",
            "Your {{ app_name }} verification code: {{ code }}",
            ("first_name", "code", "expires_minutes"),
        ),
        EmailTemplate("welcome", "Welcome to {{ app_name }}", ("first_name",)),
        EmailTemplate(
            "reset_password",
            "Reset your {{ app_name }} password",
            ("first_name", "reset_url", "expires_minutes"),
        ),
        EmailTemplate(
            "password_changed", "Your {{ app_name }} password was changed", ("first_name",)
        ),
    )
}


@dataclass(frozen=True)
class RenderedEmail:
    """What the outbox stores: a one-line subject and both bodies."""

    subject: str
    text: str
    html: str


# auto_reload=False: a loaded template is never checked against its file again, so
# rendering does no blocking file I/O on the event loop. Every template is loaded at
# import (below): a missing or broken file stops the start, not the first email.
_environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    auto_reload=False,
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _load_all() -> None:
    for name in TEMPLATES:
        for suffix in ("txt", "html"):
            _environment.get_template(f"{name}.{suffix}")


_load_all()


def one_line(value: str, max_length: int = 500) -> str:
    """``value`` made safe for a header: whitespace and control runs become one space."""
    return _HEADER_UNSAFE.sub(" ", value).strip()[:max_length]


def render(name: str, context: dict[str, Any], defaults: dict[str, Any]) -> RenderedEmail:
    """Render template ``name``; ``defaults`` (app_name, app_url, ...) yield to ``context``.

    Unknown template or missing context -> ValueError (a programming error of the caller).
    """
    template = TEMPLATES.get(name)
    if template is None:
        raise ValueError(f"unknown email template {name!r}; known: {sorted(TEMPLATES)}")
    missing = [key for key in template.required if key not in context]
    if missing:
        raise ValueError(f"email template {name!r} needs context {missing}")
    values = {**defaults, **context}
    try:
        subject = _environment.from_string(template.subject).render(values)
        text = _environment.get_template(f"{name}.txt").render(values)
        html = _environment.get_template(f"{name}.html").render(values)
    except UndefinedError as exc:
        raise ValueError(f"email template {name!r}: {exc}") from exc
    return RenderedEmail(subject=one_line(subject), text=text, html=html)
