"""What every ops script shares: database, one transaction, one line out, exit codes.

A script builds an ``argparse`` parser and an async ``action(ctx)`` that calls the
apps' ``core`` and returns the line to print. ``run_script`` then

* reaches DATABASE_URL, or the local embedded server (started if needed),
* opens an engine named ``script:<name>`` (visible in ``pg_stat_activity``),
* runs the action in one transaction, committed only if it succeeds,
* prints the action's line and exits 0, or prints ``error: ...`` on stderr and exits 1
  with nothing changed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from fastapi_server.config import describe_settings_error
from fastapi_server.lib.database_url import InvalidDatabaseURL
from fastapi_server.lib.errors import AppError
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database
from init.database import tool_database_url
from init.local_postgres import LocalPostgresError


@dataclass
class ScriptContext:
    """What an action gets: the data layers (one transaction), its arguments, its actor."""

    dbs: Databases
    args: argparse.Namespace
    actor: str  # "script:<os user>", recorded in audit trails


Action = Callable[[ScriptContext], Awaitable[str]]


class ScriptError(Exception):
    """A script's own refusal (bad argument); printed as one line, exit 1."""


def script_actor() -> str:
    """``script:<os user>``, the actor recorded for changes made by a script."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"script:{user}"


def read_secret(variable: str, prompt: str) -> str:
    """The environment variable ``variable`` when set, else asked twice on the terminal
    without echo (``ScriptError`` when there is no terminal or the answers differ): never
    from argv, where other users see it in ``ps``."""
    secret = os.environ.get(variable)
    if secret:
        return secret
    try:
        first = getpass.getpass(f"{prompt}: ")
        second = getpass.getpass(f"{prompt} (again): ")
    except EOFError as exc:
        raise ScriptError(f"no password: set {variable} or run in a terminal") from exc
    if first != second:
        raise ScriptError("the passwords do not match")
    return first


async def _run(url: str, name: str, action: Action, args: argparse.Namespace) -> str:
    database = Database.for_tool(url, f"script:{name}")
    try:
        async with database.transaction() as session:
            return await action(ScriptContext(Databases(session), args, script_actor()))
    finally:
        await database.dispose()


def run_script(parser: argparse.ArgumentParser, action: Action) -> NoReturn:
    """Parse the command line, run ``action`` in one transaction, print, exit."""
    args = parser.parse_args()
    name = Path(sys.argv[0]).stem
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with tool_database_url() as url:
            line = asyncio.run(_run(url, name, action, args))
    except AppError as exc:
        _fail(exc.detail_message)
    except ScriptError as exc:
        _fail(str(exc))
    except (LocalPostgresError, InvalidDatabaseURL) as exc:
        _fail(str(exc).splitlines()[0])
    except ValidationError as exc:
        _fail(describe_settings_error(exc))
    except (OSError, TimeoutError) as exc:
        _fail(f"cannot reach the database: {exc}")
    except KeyboardInterrupt:
        _fail("interrupted; nothing was changed")
    except Exception as exc:  # never a traceback for an ops person; the transaction rolled back
        first_line = (str(exc).strip().splitlines() or [""])[0]
        _fail(f"{type(exc).__name__}: {first_line}; nothing was changed")
    print(line)
    sys.exit(0)


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)
