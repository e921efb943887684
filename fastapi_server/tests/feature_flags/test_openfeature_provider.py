"""The in-process OpenFeature provider, through the SDK's standard ``api.get_client()``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagValueType
from openfeature.hook import Hook, HookContext, HookHints

from fastapi_server.apps.feature_flags.cache import FlagRule, bucket, flag_cache
from fastapi_server.apps.feature_flags.openfeature_provider import PROVIDER_NAME, register

LISTED = uuid.UUID(int=7)


@pytest.fixture
def flags() -> Iterator[None]:
    saved = (flag_cache.rules, flag_cache.loaded)
    flag_cache.replace_all(
        [
            FlagRule("FF_ON", True),
            FlagRule("FF_BETA", True, frozenset({LISTED}), rollout_percentage=10),
            FlagRule("FF_COLOUR", True, flag_type="string",
                     variants={"blue": "#00f", "red": "#f00"}, default_variant="blue",
                     off_variant="red", weights={"blue": 50, "red": 50}),
            FlagRule("FF_LIMIT", False, flag_type="integer", variants={"low": 1, "high": 9},
                     default_variant="high", off_variant="low"),
            FlagRule("FF_RATIO", True, flag_type="float", variants={"a": 1, "b": 0.5},
                     default_variant="a", off_variant="b"),
            FlagRule("FF_LAYOUT", True, flag_type="object", variants={"grid": {"n": 3}},
                     default_variant="grid", off_variant="grid"),
        ]
    )  # fmt: skip
    register()
    yield
    flag_cache.rules, flag_cache.loaded = saved


async def test_the_app_registers_it_as_the_default_provider(app: FastAPI) -> None:
    assert api.get_provider_metadata().name == PROVIDER_NAME


def test_values_variants_and_reasons_of_every_type(flags: None) -> None:
    client = api.get_client()
    someone = EvaluationContext(targeting_key=str(uuid.UUID(int=99)))
    listed = EvaluationContext(targeting_key=str(LISTED))
    checks: list[tuple[FlagEvaluationDetails[Any], Any, str, str]] = [
        (client.get_boolean_details("FF_ON", False), True, "on", "STATIC"),
        (client.get_boolean_details("FF_BETA", False, listed), True, "on", "TARGETING_MATCH"),
        (client.get_integer_details("FF_LIMIT", 0), 1, "low", "DISABLED"),
        (client.get_float_details("FF_RATIO", 0.0), 1.0, "a", "STATIC"),
        (client.get_object_details("FF_LAYOUT", {}), {"n": 3}, "grid", "STATIC"),
    ]
    colour = "blue" if bucket("FF_COLOUR", uuid.UUID(int=99)) < 50 else "red"
    split = client.get_string_details("FF_COLOUR", "#000", someone)
    checks.append((split, {"blue": "#00f", "red": "#f00"}[colour], colour, "SPLIT"))
    for details, value, variant, reason in checks:
        assert details.error_code is None, details.flag_key
        assert (details.value, details.variant, details.reason) == (value, variant, reason)


def test_errors_answer_the_code_default(flags: None) -> None:
    client = api.get_client()
    missing = client.get_string_details("FF_MISSING", "fallback")
    assert (missing.value, missing.error_code) == ("fallback", ErrorCode.FLAG_NOT_FOUND)
    mismatch = client.get_integer_details("FF_COLOUR", 5)
    assert (mismatch.value, mismatch.error_code) == (5, ErrorCode.TYPE_MISMATCH)
    flag_cache.reset()
    not_ready = client.get_boolean_details("FF_ON", False)
    assert (not_ready.value, not_ready.error_code) == (False, ErrorCode.PROVIDER_NOT_READY)


class Recorder(Hook):
    """A hook like OpenTelemetry's: it sees every evaluation's outcome."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any, str | None]] = []

    def after(
        self,
        hook_context: HookContext,
        details: FlagEvaluationDetails[FlagValueType],
        hints: HookHints,
    ) -> None:
        self.seen.append((details.flag_key, details.value, details.variant))


def test_a_hook_added_to_the_api_sees_in_process_evaluations(flags: None) -> None:
    recorder = Recorder()
    api.add_hooks([recorder])
    try:
        api.get_client().get_boolean_value("FF_ON", False)
    finally:
        api.clear_hooks()
    assert recorder.seen == [("FF_ON", True, "on")]
