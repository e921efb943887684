"""Flip a feature flag's `is_active`.

Usage (from the repository root):
    .venv/bin/python scripts/toggle_feature_flag.py CODENAME

Example:
    $ .venv/bin/python scripts/toggle_feature_flag.py FF_ENABLE_REGISTRATION
    FF_ENABLE_REGISTRATION new active status: False

Uses DATABASE_URL when set, else the local embedded server. Every API process sees the
change within a second. An unknown codename prints `error: ...` and exits 1 with nothing
changed. The history records the actor `script:<os user>`.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fastapi_server.apps.feature_flags import core
from fastapi_server.apps.feature_flags.schemas import check_codename
from init.script import ScriptContext, ScriptError, run_script  # E402 is allowed in scripts/

parser = argparse.ArgumentParser(description="Flip a feature flag's is_active.")
parser.add_argument("codename", help="the flag's codename, e.g. FF_ENABLE_REGISTRATION")


async def action(ctx: ScriptContext) -> str:
    try:
        codename = check_codename(ctx.args.codename)
    except ValueError as exc:
        raise ScriptError(str(exc)) from None
    flag = await core.toggle_flag(ctx.dbs, codename, actor=ctx.actor)
    return f"{flag.codename} new active status: {flag.is_active}"


if __name__ == "__main__":
    run_script(parser, action)
