"""Re-activate a user account and clear its failed logins and lockout.

Usage (from the repository root):
    .venv/bin/python scripts/activate_user.py EMAIL

Uses DATABASE_URL when set, else the local embedded server. Prints one line saying
what changed; an unknown email prints `error: ...` and exits 1 with nothing changed.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fastapi_server.apps.users import core
from init.script import ScriptContext, run_script  # E402 is allowed in scripts/

parser = argparse.ArgumentParser(
    description="Re-activate a user account and clear its failed logins and lockout."
)
parser.add_argument("email", help="the account's email (case does not matter)")


async def action(ctx: ScriptContext) -> str:
    done = await core.activate_user(ctx.dbs, ctx.args.email)
    was = "active" if done.was_active else "inactive"
    return (
        f"activated {done.user.email}: active, failed logins cleared, lockout lifted "
        f"(was {was}, {done.failed_logins_before} failed logins)"
    )


if __name__ == "__main__":
    run_script(parser, action)
