"""Schemathesis over the whole OpenAPI document, against the API under uvicorn on the test
PostgreSQL: every operation, with every check, anonymously and as a superuser.

Every operation in ``/openapi.json`` is tested, so a new endpoint is checked without an
edit here. The example budget (``SCHEMATHESIS_MAX_EXAMPLES``, default 5 per operation and
mode) and a fixed seed (``SCHEMATHESIS_SEED``) keep the suite fast and repeatable;
docs/http-contract.md gives the command for a longer run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.openapi import from_dict

from fastapi_server.apps.feature_flags.schemas import RESERVED_CODENAMES
from fastapi_server.config import Settings
from fastapi_server.main import create_app
from fastapi_server.tests.helpers.committed import CHEAP_HASHING, bearer_headers, reset
from fastapi_server.tests.helpers.processes import LiveServer

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES") or 5)
# A fixed seed keeps the suite's run the same from one build to the next; a longer run
# (docs/http-contract.md) takes another seed to explore further.
SEED = int(os.environ.get("SCHEMATHESIS_SEED") or 14)
SUPERUSER_EMAIL = "schemathesis-admin@example.org"


@dataclass
class Target:
    server: LiveServer
    database_url: str
    superuser_headers: dict[str, str]

    def refresh_superuser_token(self) -> None:
        """A new access token (after a generated logout outdated the old one)."""
        self.superuser_headers = asyncio.run(bearer_headers(self.database_url, SUPERUSER_EMAIL))


@pytest.fixture(scope="module")
def target(database_url: str) -> Iterator[Target]:
    """The API under uvicorn, and a superuser; the database is reset afterwards (the
    generated requests commit for real)."""
    headers = asyncio.run(
        bearer_headers(database_url, SUPERUSER_EMAIL, create=True, superuser=True)
    )
    server = LiveServer({"LOG_LEVEL": "WARNING", **CHEAP_HASHING})
    try:
        yield Target(server, database_url, headers)
    finally:
        output = server.stop()
        asyncio.run(reset(database_url))
        assert "Traceback" not in output, output


# Statuses a request the schema calls valid may get (schemathesis' default) ...
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
# ... and 400 where the operation documents a 400 for a well-formed request: a code of
# its own (a wrong token, a weak password), not the platform's MALFORMED_BODY.
PLATFORM_400_CODES = {"MALFORMED_BODY"}


def _config(document: dict[str, Any]) -> SchemathesisConfig:
    refused_by_rule = sorted(
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if set(operation["responses"].get("400", {}).get("x-error-codes", ())) - PLATFORM_400_CODES
    )
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES},
            "checks": {"enabled": True},
            "operations": [
                {
                    "include-operation-id": refused_by_rule,
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": [*POSITIVE_STATUSES, "400"]
                        }
                    },
                }
            ],
        }
    )


@schemathesis.check
def documented_error_code(ctx: Any, response: Any, case: schemathesis.Case[Any]) -> bool | None:
    """An error's ``detail.code`` is one OpenAPI lists for its status (``x-error-codes``)."""
    documented = case.operation.definition.raw.get("responses", {}).get(
        str(response.status_code), {}
    )
    codes = documented.get("x-error-codes")
    if response.status_code < 400 or codes is None:
        return None
    code = response.json()["detail"]["code"]
    if code not in codes:
        raise AssertionError(f"{response.status_code} {code} is not among {codes}")
    return True


# The document the API serves, read from the app itself at collection (one test per
# operation); the requests go to the live server.
DOCUMENT = create_app(Settings(env="test", log_format="text")).openapi()
schema = from_dict(DOCUMENT, config=_config(DOCUMENT))


def reserved_path(case: schemathesis.Case[Any]) -> bool:
    """A reserved codename in the path: ``/feature-flags/evaluate`` is the evaluation
    operation (documented on its own), and clients resolve "." and ".." in URLs."""
    return (case.path_parameters or {}).get("codename") in RESERVED_CODENAMES


@schema.parametrize()
def test_anonymous(case: schemathesis.Case[Any], target: Target) -> None:
    if not reserved_path(case):
        case.call_and_validate(base_url=target.server.url)


@schema.parametrize()
def test_superuser(case: schemathesis.Case[Any], target: Target) -> None:
    if reserved_path(case):
        return
    case.call_and_validate(base_url=target.server.url, headers=target.superuser_headers)
    if case.operation.definition.raw.get("operationId") == "users_logout":
        target.refresh_superuser_token()
