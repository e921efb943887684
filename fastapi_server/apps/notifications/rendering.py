"""Email templates: the registry, the Jinja2 environment and rendering.

Each template is a file pair in ``templates/`` (``<name>.html`` and ``<name>.txt``, both
extending the shared ``base.html``/``base.txt``) plus one ``EmailTemplate`` line below
(its default subject and the context it needs). HTML is autoescaped; the text part is
not. ``NOTIFICATIONS_SUBJECTS`` may replace any default subject (``check_subject``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, meta, select_autoescape
from jinja2.exceptions import TemplateSyntaxError, UndefinedError
from markupsafe import escape

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# Any run of whitespace or control characters (CR, LF, NUL, ...) in a one-line header value.
_HEADER_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]+")


# What every template gets besides its own context (see core.enqueue).
DEFAULT_CONTEXT = ("app_name", "app_url", "login_url", "forgot_password_url")


@dataclass(frozen=True)
class EmailTemplate:
    """A template's default subject (a Jinja string) and the context keys it requires."""

    name: str
    subject: str
    required: tuple[str, ...]
    # Context keys whose values are secrets (a code, a link with a token): rendered as
    # placeholders, kept apart in the outbox and filled in at send time (``fill_secrets``).
    secret: tuple[str, ...] = ()


TEMPLATES: dict[str, EmailTemplate] = {
    template.name: template
    for template in (
        EmailTemplate(
            "registration_code",
            "Your {{ app_name }} verification code",
            ("first_name", "code", "expires_minutes"),
            secret=("code",),
        ),
        EmailTemplate("welcome", "Welcome to {{ app_name }}", ("first_name",)),
        EmailTemplate(
            "registration_attempt",
            "Someone tried to register at {{ app_name }} with your address",
            ("first_name",),
        ),
        EmailTemplate(
            "reset_password",
            "Reset your {{ app_name }} password",
            ("first_name", "reset_url", "expires_minutes"),
            secret=("reset_url",),
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


def secret_keys(name: str) -> tuple[str, ...]:
    """The context keys of template ``name`` that hold secrets."""
    return _template(name).secret


def placeholder(key: str) -> str:
    """What a secret's value is rendered as (unchanged by HTML escaping)."""
    return f"[[secret:{key}]]"


def fill_secrets(body: str, secrets: dict[str, str], *, html: bool) -> str:
    """``body`` with each secret's placeholder replaced by its value (escaped for HTML)."""
    for key, value in secrets.items():
        body = body.replace(placeholder(key), str(escape(value)) if html else value)
    return body


def _template(name: str) -> EmailTemplate:
    template = TEMPLATES.get(name)
    if template is None:
        raise ValueError(f"unknown email template {name!r}; known: {sorted(TEMPLATES)}")
    return template


@lru_cache(maxsize=64)
def _subject_template(source: str) -> Template:
    return _environment.from_string(source)


def check_subject(name: str, subject: str) -> None:
    """ValueError unless ``subject`` is a Jinja subject template ``name`` can always render.

    It may use only what every message of that template has: its required context and
    ``DEFAULT_CONTEXT``. Checked when the settings are read, not at the first email.
    """
    template = _template(name)
    if not subject.strip():
        raise ValueError(f"the subject of {name!r} is empty")
    try:
        used = meta.find_undeclared_variables(_environment.parse(subject))
    except TemplateSyntaxError as exc:
        raise ValueError(f"the subject of {name!r} is not a valid template: {exc}") from exc
    allowed = set(template.required) - set(template.secret)
    unknown = sorted(used - allowed - set(DEFAULT_CONTEXT))
    if unknown:
        available = sorted({*allowed, *DEFAULT_CONTEXT})
        raise ValueError(f"the subject of {name!r} uses {unknown}; it may use {available}")


def render(
    name: str,
    context: dict[str, Any],
    defaults: dict[str, Any],
    subject: str | None = None,
) -> RenderedEmail:
    """Render template ``name``; ``defaults`` (app_name, app_url, ...) yield to ``context``.

    The template's secret keys are rendered as placeholders (``placeholder``), whatever
    ``context`` holds for them: the stored bodies carry no secret (``fill_secrets``).

    ``subject`` (a Jinja string, from settings) replaces the template's default subject.
    Unknown template or missing context -> ValueError (a programming error of the caller).
    """
    template = _template(name)
    missing = [key for key in template.required if key not in context]
    if missing:
        raise ValueError(f"email template {name!r} needs context {missing}")
    values = {**defaults, **context, **{key: placeholder(key) for key in template.secret}}
    try:
        subject = _subject_template(subject or template.subject).render(values)
        text = _environment.get_template(f"{name}.txt").render(values)
        html = _environment.get_template(f"{name}.html").render(values)
    except UndefinedError as exc:
        raise ValueError(f"email template {name!r}: {exc}") from exc
    return RenderedEmail(subject=one_line(subject), text=text, html=html)
