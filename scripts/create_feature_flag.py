"""Create a feature flag (off unless --active), a boolean one or one with typed variants.

Usage (from the repository root):
    .venv/bin/python scripts/create_feature_flag.py CODENAME [--label L] [--description D]
        [--active] [--type T --variant NAME=JSON ... --default NAME --off NAME
        [--weight NAME=PERCENT ...]]

Examples:
    .venv/bin/python scripts/create_feature_flag.py FF_NEW_CHECKOUT --label "New checkout" --active
    .venv/bin/python scripts/create_feature_flag.py FF_BUTTON_COLOUR --type string \
        --variant blue='"#00f"' --variant red='"#f00"' --default blue --off red --active

Each --variant value is JSON of the flag's type (a string in double quotes, 3, 0.5, true,
{"k": 1}); weights are integers adding up to 100.

Uses DATABASE_URL when set, else the local embedded server. Every API process sees the new
flag within a second. A codename that exists already (or is malformed, or reserved:
`evaluate`, `.`, `..`) prints `error: ...` and exits 1 with nothing changed. The history
records the actor `script:<os user>`.
"""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pydantic import ValidationError

from fastapi_server.apps.feature_flags import core
from fastapi_server.apps.feature_flags.schemas import FeatureFlagCreate
from fastapi_server.apps.feature_flags.variants import FLAG_TYPES
from init.script import ScriptContext, ScriptError, run_script  # E402 is allowed in scripts/

parser = argparse.ArgumentParser(description="Create a feature flag (off unless --active).")
parser.add_argument(
    "codename", help="letters, digits, '_', '-' or '.'; 1 to 100 characters; not 'evaluate'"
)
parser.add_argument("--label", default="", help="short human name")
parser.add_argument("--description", default="", help="what the flag does")
parser.add_argument("--active", action="store_true", help="switch it on for everyone at once")
parser.add_argument(
    "--type",
    default="boolean",
    choices=FLAG_TYPES,
    help="the type of the variants' values (default: boolean)",
)
parser.add_argument(
    "--variant",
    action="append",
    default=[],
    metavar="NAME=JSON",
    help="a variant and its JSON value, e.g. blue='\"#00f\"' (repeat for each)",
)
parser.add_argument("--default", help="the variant served when the flag is on")
parser.add_argument("--off", help="the variant served when the flag is off")
parser.add_argument(
    "--weight",
    action="append",
    default=[],
    metavar="NAME=PERCENT",
    help="a variant's share of signed-in users (repeat; adding up to 100)",
)


def _pairs(option: str, items: list[str], parse: Callable[[str], Any]) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep:
            raise ScriptError(f"{option} {item!r}: expected NAME=VALUE")
        try:
            pairs[name] = parse(raw)
        except ValueError:
            raise ScriptError(f"{option} {item!r}: {raw!r} is not valid") from None
    return pairs


def _flag_in(args: argparse.Namespace) -> FeatureFlagCreate:
    try:
        return FeatureFlagCreate(
            codename=args.codename,
            label=args.label,
            description=args.description,
            is_active=args.active,
            flag_type=args.type,
            variants=_pairs("--variant", args.variant, json.loads),
            default_variant=args.default,
            off_variant=args.off,
            weights=_pairs("--weight", args.weight, int),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ScriptError(f"{field}: {message}" if field else message) from None


async def action(ctx: ScriptContext) -> str:
    flag = await core.create_flag(ctx.dbs, _flag_in(ctx.args), actor=ctx.actor)
    typed = "" if not flag.variants else f", {flag.flag_type}: {', '.join(sorted(flag.variants))}"
    return f"created {flag.codename} (active: {flag.is_active}, label: {flag.label!r}{typed})"


if __name__ == "__main__":
    run_script(parser, action)
