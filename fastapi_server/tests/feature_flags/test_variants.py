"""Typed variants: the database's rules, the admin API, the history and evaluation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_server.apps.feature_flags import core
from fastapi_server.apps.feature_flags.cache import FlagRule, Reason, flag_cache

COLOURS = {"blue": "#00f", "red": "#f00", "grey": "#888"}
STRING_FLAG = {
    "codename": "FF_BUTTON_COLOUR",
    "flag_type": "string",
    "variants": COLOURS,
    "default_variant": "blue",
    "off_variant": "grey",
    "is_active": True,
}


@dataclass
class Someone:
    id: uuid.UUID


USERS = [Someone(uuid.UUID(int=n * 7919 + 1)) for n in range(1000)]


@pytest.fixture
def cache() -> Iterator[None]:
    """The process cache, restored after the test."""
    saved = (flag_cache.rules, flag_cache.loaded)
    yield
    flag_cache.rules, flag_cache.loaded = saved


async def test_the_original_insert_still_makes_a_plain_boolean_flag(
    db_session: AsyncSession,
) -> None:
    await db_session.execute(
        text(
            "INSERT INTO feature_flags (codename, is_active, label) "
            "VALUES ('FF_PLAIN', True, 'Plain')"
        )
    )
    row = (
        await db_session.execute(
            text(
                "SELECT flag_type, variants, default_variant, off_variant, weights "
                "FROM feature_flags WHERE codename = 'FF_PLAIN'"
            )
        )
    ).one()
    assert tuple(row) == ("boolean", {}, None, None, {})


BAD_ROWS = {
    "string flag without variants": ("string", "{}", None, None, "{}", 100),
    "value of the wrong type": ("integer", '{"a": 1, "b": "2"}', "a", "b", "{}", 100),
    "a float is not an integer": ("integer", '{"a": 1, "b": 2.5}', "a", "b", "{}", 100),
    "unknown default variant": ("string", '{"a": "x"}', "nope", "a", "{}", 100),
    "no off variant": ("string", '{"a": "x"}', "a", None, "{}", 100),
    "weights not adding up to 100": ("string", '{"a": "x", "b": "y"}', "a", "b", '{"a": 60}', 100),
    "weight of an unknown variant": ("string", '{"a": "x"}', "a", "a", '{"zz": 100}', 100),
    "weights with a partial rollout": ("string", '{"a": "x"}', "a", "a", '{"a": 100}', 50),
    "object flag with a list": ("object", '{"a": [1]}', "a", "a", "{}", 100),
    "bad variant name": ("string", '{"a b": "x"}', "a b", "a b", "{}", 100),
}


@pytest.mark.parametrize("case", BAD_ROWS)
async def test_the_database_refuses_inconsistent_variants(
    db_session: AsyncSession, case: str
) -> None:
    flag_type, variants, default, off, weights, rollout = BAD_ROWS[case]
    with pytest.raises(DBAPIError) as raised:
        async with db_session.begin_nested():
            await db_session.execute(
                text(
                    "INSERT INTO feature_flags (codename, flag_type, variants, default_variant, "
                    "off_variant, weights, rollout_percentage) VALUES ('FF_BAD', :t, "
                    "CAST(:v AS jsonb), :d, :o, CAST(:w AS jsonb), :r)"
                ),
                {"t": flag_type, "v": variants, "d": default, "o": off, "w": weights, "r": rollout},
            )
    assert "check_violation" in repr(raised.value.orig) or "CheckViolation" in repr(
        raised.value.orig
    )
    assert "feature flag FF_BAD:" in str(raised.value.orig)


async def test_the_database_accepts_every_type_and_refuses_a_bad_update(
    db_session: AsyncSession,
) -> None:
    rows: dict[str, tuple[str, dict[str, Any]]] = {
        "FF_B": ("boolean", {"yes": True, "no": False}),
        "FF_S": ("string", {"a": "x", "b": ""}),
        "FF_I": ("integer", {"a": 1, "b": -20}),
        "FF_F": ("float", {"a": 1.5, "b": 2}),
        "FF_O": ("object", {"a": {"k": [1, 2]}, "b": {}}),
    }
    for codename, (flag_type, variants) in rows.items():
        first, second = list(variants)
        await db_session.execute(
            text(
                "INSERT INTO feature_flags (codename, flag_type, variants, default_variant, "
                "off_variant) VALUES (:c, :t, CAST(:v AS jsonb), :d, :o)"
            ),
            {"c": codename, "t": flag_type, "v": json.dumps(variants), "d": first, "o": second},
        )
    # Renaming the variants away from under default_variant is refused too.
    with pytest.raises(DBAPIError, match="default_variant must name one of the variants"):
        async with db_session.begin_nested():
            await db_session.execute(
                text("UPDATE feature_flags SET variants = '{\"c\": \"z\"}' WHERE codename = 'FF_S'")
            )


async def test_the_history_records_variant_changes(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await client.post("/feature-flags", json=STRING_FLAG, headers=admin_headers)
    assert created.status_code == 201, created.text
    patched = await client.patch(
        "/feature-flags/FF_BUTTON_COLOUR",
        json={"weights": {"blue": 50, "red": 50}, "default_variant": "red"},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["weights"] == {"blue": 50, "red": 50}
    history = await client.get("/feature-flags/FF_BUTTON_COLOUR/history", headers=admin_headers)
    latest = history.json()["results"][0]
    assert latest["old_values"]["weights"] == {}
    assert latest["new_values"]["weights"] == {"blue": 50, "red": 50}
    assert latest["old_values"]["default_variant"] == "blue"
    assert latest["new_values"]["default_variant"] == "red"
    assert history.json()["results"][1]["new_values"]["variants"] == COLOURS
    assert history.json()["results"][1]["new_values"]["flag_type"] == "string"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"flag_type": "string"}, "a string flag needs variants"),
        ({"variants": {"a": 1}, "default_variant": "a", "off_variant": "a"}, "not a boolean"),
        ({**STRING_FLAG, "default_variant": "green"}, "default_variant must name"),
        ({**STRING_FLAG, "weights": {"blue": 10}}, "weights must add up to 100"),
        (
            {
                **STRING_FLAG,
                "variants": {"a": "nul\x00"},
                "default_variant": "a",
                "off_variant": "a",
            },
            "NUL",
        ),
    ],
)
async def test_create_refuses_inconsistent_variants_with_400_invalid_flag_variants(
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: dict[str, Any], message: str
) -> None:
    response = await client.post(
        "/feature-flags", json={"codename": "FF_BAD", **body}, headers=admin_headers
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"]["code"] == "INVALID_FLAG_VARIANTS"
    assert message in response.json()["detail"]["message"]


async def test_patch_that_would_break_the_variants_is_a_400_with_its_code(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await client.post("/feature-flags", json=STRING_FLAG, headers=admin_headers)
    for body, message in [
        ({"variants": {"green": "#0f0"}}, "default_variant must name one of the variants"),
        ({"flag_type": "integer"}, "is not a integer value"),
        ({"weights": {"blue": 100}, "rollout_percentage": 10}, "cannot be combined"),
    ]:
        response = await client.patch(
            "/feature-flags/FF_BUTTON_COLOUR", json=body, headers=admin_headers
        )
        assert response.status_code == 400, body
        assert response.json()["detail"]["code"] == "INVALID_FLAG_VARIANTS"
        assert message in response.json()["detail"]["message"]
    # Back to a plain boolean flag: the variants go, and so do the names.
    plain = await client.patch(
        "/feature-flags/FF_BUTTON_COLOUR",
        json={"flag_type": "boolean", "variants": {}, "default_variant": None, "off_variant": None},
        headers=admin_headers,
    )
    assert plain.status_code == 200, plain.text
    assert plain.json()["variants"] == {}


async def test_resolution_reasons_and_variants(cache: None) -> None:
    listed = USERS[0]
    flag_cache.replace_all(
        [
            FlagRule("FF_OFF", False, flag_type="string", variants=COLOURS,
                     default_variant="blue", off_variant="grey"),
            FlagRule("FF_STATIC", True, flag_type="string", variants=COLOURS,
                     default_variant="blue", off_variant="grey"),
            FlagRule("FF_ROLLOUT", True, frozenset({listed.id}), rollout_percentage=0,
                     flag_type="integer", variants={"one": 1, "zero": 0},
                     default_variant="one", off_variant="zero"),
            FlagRule("FF_SPLIT", True, flag_type="string", variants=COLOURS,
                     default_variant="blue", off_variant="grey",
                     weights={"blue": 50, "red": 50}),
        ]
    )  # fmt: skip
    off = core.resolve("FF_OFF", listed.id)
    assert off is not None
    assert (off.value, off.variant, off.reason) == ("#888", "grey", Reason.DISABLED)
    static = core.resolve("FF_STATIC", None)
    assert static is not None
    assert (static.value, static.variant, static.reason) == ("#00f", "blue", Reason.STATIC)
    matched = core.resolve("FF_ROLLOUT", listed.id)
    assert matched is not None
    assert (matched.value, matched.reason) == (1, Reason.TARGETING_MATCH)
    outside = core.resolve("FF_ROLLOUT", USERS[1].id)
    assert outside is not None
    assert (outside.value, outside.variant, outside.reason) == (0, "zero", Reason.SPLIT)
    assert core.resolve("FF_NOPE", None) is None

    split = [core.resolve("FF_SPLIT", user.id) for user in USERS]
    assert {r.reason for r in split if r} == {Reason.SPLIT}
    reds = sum(1 for r in split if r and r.variant == "red")
    assert 400 < reds < 600
    assert split == [core.resolve("FF_SPLIT", user.id) for user in USERS]  # sticky
    anonymous = core.resolve("FF_SPLIT", None)
    assert anonymous is not None
    assert (anonymous.variant, anonymous.reason) == ("blue", Reason.STATIC)
    # A server-side targeting key that is not a user id splits the same way.
    assert core.resolve("FF_SPLIT", str(USERS[5].id)) == split[5]
    assert await core.is_enabled("FF_STATIC") is True
    assert await core.is_enabled("FF_OFF") is False


async def test_get_value_serves_typed_values_and_defaults(cache: None) -> None:
    flag_cache.replace_all(
        [
            FlagRule("FF_COLOUR", True, flag_type="string", variants=COLOURS,
                     default_variant="red", off_variant="grey"),
            FlagRule("FF_RATIO", True, flag_type="float", variants={"a": 2, "b": 0.5},
                     default_variant="a", off_variant="b"),
            FlagRule("FF_LIMITS", True, flag_type="object", variants={"a": {"max": 3}},
                     default_variant="a", off_variant="a"),
            FlagRule("FF_PLAIN", True),
        ]
    )  # fmt: skip
    assert await core.get_value("FF_COLOUR", "#000") == "#f00"
    assert await core.get_value("FF_COLOUR", 0) == 0  # the wrong type: the default
    assert await core.get_value("FF_RATIO", 1.0, USERS[0]) == 2.0
    assert await core.get_value("FF_PLAIN", False) is True
    assert await core.get_value("FF_MISSING", "fallback") == "fallback"
    limits = await core.get_value("FF_LIMITS", {})
    limits["max"] = 99  # the caller's own copy
    assert await core.get_value("FF_LIMITS", {}) == {"max": 3}
