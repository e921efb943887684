"""Evaluation from the in-process cache: targeting, defaults, fail-closed, require_flag."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fastapi_server.apps.feature_flags import core
from fastapi_server.apps.feature_flags.cache import FlagRule, bucket, flag_cache
from fastapi_server.apps.feature_flags.entitlements import require_flag
from fastapi_server.apps.feature_flags.errors import FeatureDisabled


@dataclass
class Someone:
    id: uuid.UUID


@pytest.fixture
def cache() -> Iterator[None]:
    """The process cache, restored after the test."""
    saved = (flag_cache.rules, flag_cache.loaded)
    yield
    flag_cache.rules, flag_cache.loaded = saved


def _load(*rules: FlagRule) -> None:
    flag_cache.replace_all(rules)


USERS = [Someone(uuid.UUID(int=n * 7919 + 1)) for n in range(2000)]


def test_bucket_is_sha256_of_codename_and_user_id_mod_100() -> None:
    user_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    import hashlib

    digest = hashlib.sha256(b"FF_X:12345678-1234-5678-1234-567812345678").digest()
    assert bucket("FF_X", user_id) == int.from_bytes(digest[:8], "big") % 100


async def test_plain_active_flag_is_on_for_everyone(cache: None) -> None:
    _load(FlagRule("FF_ON", True), FlagRule("FF_OFF", False))
    assert await core.is_enabled("FF_ON") is True
    assert await core.is_enabled("FF_ON", USERS[0]) is True
    assert await core.is_enabled("FF_OFF") is False
    assert await core.is_enabled("FF_OFF", USERS[0]) is False


async def test_listed_users_see_it_on_and_others_follow_the_rollout(cache: None) -> None:
    listed = USERS[0]
    _load(FlagRule("FF_BETA", True, frozenset({listed.id}), rollout_percentage=0))
    assert await core.is_enabled("FF_BETA", listed) is True
    assert not any([await core.is_enabled("FF_BETA", user) for user in USERS[1:200]])
    assert await core.is_enabled("FF_BETA") is False  # anonymous: only at 100%


async def test_is_active_is_the_master_switch(cache: None) -> None:
    listed = USERS[0]
    _load(FlagRule("FF_BETA", False, frozenset({listed.id}), rollout_percentage=100))
    assert await core.is_enabled("FF_BETA", listed) is False
    assert await core.is_enabled("FF_BETA") is False


async def test_rollout_is_sticky_and_roughly_proportional(cache: None) -> None:
    _load(FlagRule("FF_HALF", True, rollout_percentage=30))
    first = [await core.is_enabled("FF_HALF", user) for user in USERS]
    again = [await core.is_enabled("FF_HALF", user) for user in USERS]
    assert first == again
    assert 0.25 < sum(first) / len(USERS) < 0.35
    assert await core.is_enabled("FF_HALF") is False
    # Growing the rollout keeps everyone who already had it.
    _load(FlagRule("FF_HALF", True, rollout_percentage=60))
    grown = [await core.is_enabled("FF_HALF", user) for user in USERS]
    assert all(g for f, g in zip(first, grown, strict=True) if f)
    assert sum(grown) > sum(first)


async def test_buckets_differ_between_flags(cache: None) -> None:
    _load(
        FlagRule("FF_A", True, rollout_percentage=50), FlagRule("FF_B", True, rollout_percentage=50)
    )
    a = [await core.is_enabled("FF_A", user) for user in USERS]
    b = [await core.is_enabled("FF_B", user) for user in USERS]
    assert a != b


async def test_missing_flag_answers_its_default_once_loaded(cache: None) -> None:
    _load()
    assert await core.is_enabled("FF_NOPE") is False
    assert await core.is_enabled("FF_NOPE", default_if_missing=True) is True


async def test_never_loaded_cache_fails_closed(cache: None) -> None:
    flag_cache.reset()
    assert await core.is_enabled("FF_NOPE", default_if_missing=True) is False


async def test_require_flag_raises_feature_disabled_when_off(cache: None) -> None:
    _load(FlagRule("FF_ON", True), FlagRule("FF_OFF", False))
    await require_flag("FF_ON")()
    with pytest.raises(FeatureDisabled) as raised:
        await require_flag("FF_OFF")()
    assert raised.value.status_code == 404
    assert raised.value.to_detail()["code"] == "FEATURE_DISABLED"


async def test_require_flag_default_may_be_a_callable_read_at_each_check(cache: None) -> None:
    _load()
    setting = {"value": True}
    dependency = require_flag("FF_NOPE", default_if_missing=lambda: setting["value"])
    await dependency()
    setting["value"] = False
    with pytest.raises(FeatureDisabled):
        await dependency()
    flag_cache.reset()  # never loaded: closed whatever the default says
    setting["value"] = True
    with pytest.raises(FeatureDisabled):
        await dependency()


async def test_evaluate_all_gives_the_callers_view(cache: None) -> None:
    listed = USERS[3]
    _load(
        FlagRule("FF_ON", True),
        FlagRule("FF_OFF", False),
        FlagRule("FF_LISTED", True, frozenset({listed.id}), rollout_percentage=0),
    )
    assert core.evaluate_all() == {"FF_ON": True}  # anonymous: only what it gets
    assert core.evaluate_all(listed) == {"FF_ON": True, "FF_OFF": False, "FF_LISTED": True}


async def test_the_anonymous_view_follows_every_change_of_the_rules(cache: None) -> None:
    _load(FlagRule("FF_A", True), FlagRule("FF_B", False))
    first = core.anonymous_view()
    assert dict(first) == {"FF_A": True}  # off for anonymous callers: left out
    assert core.anonymous_view() is first  # worked out once per change, not per call
    flag_cache.update(["FF_B"], [FlagRule("FF_B", True)])
    assert dict(core.anonymous_view()) == {"FF_A": True, "FF_B": True}
    flag_cache.update(["FF_A"], [])  # deleted
    assert dict(core.anonymous_view()) == {"FF_B": True}
    with pytest.raises(TypeError):
        core.anonymous_view()["FF_B"] = False  # type: ignore[index]
