"""Create a feature flag (off unless --active).

Usage (from the repository root):
    .venv/bin/python scripts/create_feature_flag.py CODENAME [--label L] [--description D]
        [--active]

Example:
    .venv/bin/python scripts/create_feature_flag.py FF_NEW_CHECKOUT --label "New checkout" --active

Uses DATABASE_URL when set, else the local embedded server. Every API process sees the new
flag within a second. A codename that exists already (or is malformed, or reserved:
`evaluate`, `.`, `..`) prints `error: ...` and exits 1 with nothing changed. The history
records the actor `script:<os user>`.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pydantic import ValidationError

from fastapi_server.apps.feature_flags import core
from fastapi_server.apps.feature_flags.schemas import FeatureFlagCreate
from init.script import ScriptContext, ScriptError, run_script  # E402 is allowed in scripts/

parser = argparse.ArgumentParser(description="Create a feature flag (off unless --active).")
parser.add_argument(
    "codename", help="letters, digits, '_', '-' or '.'; 1 to 100 characters; not 'evaluate'"
)
parser.add_argument("--label", default="", help="short human name")
parser.add_argument("--description", default="", help="what the flag does")
parser.add_argument("--active", action="store_true", help="switch it on for everyone at once")


def _flag_in(args: argparse.Namespace) -> FeatureFlagCreate:
    try:
        return FeatureFlagCreate(
            codename=args.codename,
            label=args.label,
            description=args.description,
            is_active=args.active,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ScriptError(f"{field}: {message}") from None


async def action(ctx: ScriptContext) -> str:
    flag = await core.create_flag(ctx.dbs, _flag_in(ctx.args), actor=ctx.actor)
    return f"created {flag.codename} (active: {flag.is_active}, label: {flag.label!r})"


if __name__ == "__main__":
    run_script(parser, action)
