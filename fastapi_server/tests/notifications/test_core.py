"""Rendering and queueing: what ``core.enqueue`` writes in the caller's transaction."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from fastapi_server.apps.notifications import core
from fastapi_server.apps.notifications.rendering import DEFAULT_CONTEXT, TEMPLATES
from fastapi_server.apps.notifications.settings import (
    NotificationsSettings,
    get_notifications_settings,
)
from fastapi_server.config import get_settings
from fastapi_server.resources.database.databases import Databases
from fastapi_server.tests.helpers.mail import outbox_for
from fastapi_server.tests.helpers.settings import SettingsEnv, app_settings_env

CONTEXTS: dict[str, dict[str, Any]] = {
    "registration_code": {"first_name": "Ada", "code": "123456", "expires_minutes": 10},
    "welcome": {"first_name": "Ada", "login_url": "https://app.example/login"},
    "reset_password": {
        "first_name": "Ada",
        "reset_url": "https://app.example/reset?token=abc",
        "expires_minutes": 60,
    },
    "password_changed": {"first_name": "Ada"},
    "registration_attempt": {"first_name": "Ada"},
}


def test_every_template_has_a_context_here() -> None:
    assert set(CONTEXTS) == set(TEMPLATES)


@pytest.mark.parametrize("template", sorted(CONTEXTS))
async def test_enqueue_renders_both_parts_into_the_outbox(dbs: Databases, template: str) -> None:
    message_id = await core.enqueue(
        dbs,
        template=template,
        to_email="ada@example.com",
        to_name="Ada L",
        context=CONTEXTS[template],
    )

    [queued] = await outbox_for(dbs, "ADA@example.com")
    assert queued.id == message_id
    assert queued.status == "pending"
    assert queued.attempts == 0
    assert queued.to_name == "Ada L"
    assert "Hello Ada," in queued.body_text
    assert "Hello Ada," in queued.body_html
    assert queued.body_html.lstrip().startswith("<!DOCTYPE html>")  # the shared layout
    assert get_settings().app_url in queued.body_text  # the layout's footer link
    for value in CONTEXTS[template].values():
        assert str(value) in queued.body_text
        assert str(value).replace("&", "&amp;") in queued.body_html


async def test_the_code_is_in_the_body_only(dbs: Databases) -> None:
    await core.enqueue(
        dbs,
        template="registration_code",
        to_email="ada@example.com",
        context=CONTEXTS["registration_code"],
    )
    [queued] = await outbox_for(dbs, "ada@example.com")
    assert "123456" not in queued.subject
    assert "123456" in queued.body_text
    assert "10 minutes" in queued.body_text


async def test_welcome_link_defaults_to_app_url(dbs: Databases) -> None:
    await core.enqueue(
        dbs, template="welcome", to_email="ada@example.com", context={"first_name": "Ada"}
    )
    [queued] = await outbox_for(dbs, "ada@example.com")
    assert f"{get_settings().app_url.rstrip('/')}/login" in queued.body_text


async def test_html_part_escapes_user_data_and_text_part_keeps_it(dbs: Databases) -> None:
    name = '<script>alert("x")</script>'
    await core.enqueue(
        dbs, template="password_changed", to_email="ada@example.com", context={"first_name": name}
    )
    [queued] = await outbox_for(dbs, "ada@example.com")
    assert "<script>" not in queued.body_html
    assert "&lt;script&gt;" in queued.body_html
    assert name in queued.body_text


async def test_unknown_template_is_a_value_error(dbs: Databases) -> None:
    with pytest.raises(ValueError, match="unknown email template"):
        await core.enqueue(dbs, template="nope", to_email="ada@example.com", context={})
    assert await outbox_for(dbs, "ada@example.com") == []


async def test_missing_context_is_a_value_error(dbs: Databases) -> None:
    with pytest.raises(ValueError, match="code"):
        await core.enqueue(
            dbs,
            template="registration_code",
            to_email="ada@example.com",
            context={"first_name": "A"},
        )


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.com\r\nBcc: eve@example.com",
        "Ada <ada@example.com>",
        "a@x.com, b@y.com",
        "nobody",
    ],
)
async def test_enqueue_refuses_anything_but_one_plain_address(dbs: Databases, address: str) -> None:
    with pytest.raises(ValueError, match="address"):
        await core.enqueue(dbs, template="welcome", to_email=address, context={"first_name": "Ada"})


async def test_display_name_with_line_breaks_is_folded_to_one_line(dbs: Databases) -> None:
    await core.enqueue(
        dbs,
        template="welcome",
        to_email="ada@example.com",
        to_name="Ada\r\nBcc: eve@example.com",
        context={"first_name": "Ada"},
    )
    [queued] = await outbox_for(dbs, "ada@example.com")
    assert queued.to_name == "Ada Bcc: eve@example.com"


def test_app_link_joins_app_url_and_query() -> None:
    base = get_settings().app_url.rstrip("/")
    assert core.app_link("/reset-password", token="a b&c") == f"{base}/reset-password?token=a+b%26c"


async def test_lookups_by_recipient_use_the_lower_to_email_index(dbs: Databases) -> None:
    """``for_recipient`` and psql look messages up by ``lower(to_email)``: that is indexed."""
    await core.enqueue(
        dbs, template="welcome", to_email="Ada@Example.com", context={"first_name": "Ada"}
    )
    await dbs.session.execute(text("SET LOCAL enable_seqscan = off"))  # tiny table otherwise
    plan = await dbs.session.scalars(
        text("EXPLAIN SELECT id FROM notifications_outbox WHERE lower(to_email) = lower(:email)"),
        {"email": "ada@example.COM"},
    )
    assert "ix_notifications_outbox_to_email" in "\n".join(plan)


async def test_rendering_reads_no_template_file_once_loaded(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Templates load once per process: no file-system checks on the event loop per email."""
    checked: list[str] = []
    real_getmtime = os.path.getmtime

    def counting_getmtime(path: str) -> float:
        checked.append(path)
        return real_getmtime(path)

    monkeypatch.setattr(os.path, "getmtime", counting_getmtime)
    for _ in range(2):
        await core.enqueue(
            dbs, template="welcome", to_email="ada@example.com", context={"first_name": "Ada"}
        )
    assert checked == []


@pytest.fixture
def notifications_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[SettingsEnv]:
    """``notifications_env(SUBJECTS="...")`` sets NOTIFICATIONS_* for this test."""
    with app_settings_env(monkeypatch, "NOTIFICATIONS_", get_notifications_settings) as configure:
        yield configure


async def test_subjects_can_be_overridden_from_settings(
    dbs: Databases, notifications_env: SettingsEnv
) -> None:
    overrides = {"welcome": "Hello {{ first_name }}, welcome to {{ app_name }}!"}
    notifications_env(SUBJECTS=json.dumps(overrides), APP_NAME="Acme")
    await core.enqueue(
        dbs, template="welcome", to_email="ada@example.com", context={"first_name": "Ada"}
    )
    await core.enqueue(
        dbs, template="password_changed", to_email="ada@example.com", context={"first_name": "A"}
    )
    welcome, changed = await outbox_for(dbs, "ada@example.com")
    assert welcome.subject == "Hello Ada, welcome to Acme!"
    assert changed.subject == "Your Acme password was changed"  # not overridden: the default


@pytest.mark.parametrize(
    ("subjects", "error"),
    [
        ({"welcom": "Hi"}, "unknown email template 'welcom'"),
        ({"welcome": "Your code: {{ code }}"}, "'code'"),  # not in the welcome context
        ({"welcome": "Hi {{ first_name"}, "welcome"),  # Jinja syntax error
        ({"welcome": "Hi\r\nBcc: eve@example.com"}, "single line"),
        ({"welcome": "  "}, "empty"),
    ],
)
def test_bad_subject_overrides_are_refused_at_start(subjects: dict[str, str], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        NotificationsSettings(subjects=subjects)


@pytest.mark.parametrize("template", sorted(CONTEXTS))
async def test_a_subject_may_use_everything_check_subject_allows(
    dbs: Databases, notifications_env: SettingsEnv, template: str
) -> None:
    secret = set(TEMPLATES[template].secret)  # never in a subject
    names = sorted({*TEMPLATES[template].required, *DEFAULT_CONTEXT} - secret)
    subject = " ".join(f"{{{{ {name} }}}}" for name in names)
    notifications_env(SUBJECTS=json.dumps({template: subject}))
    context = {key: CONTEXTS[template][key] for key in TEMPLATES[template].required}
    await core.enqueue(dbs, template=template, to_email="ada@example.com", context=context)
    [queued] = await outbox_for(dbs, "ada@example.com")
    assert get_settings().app_url in queued.subject
