"""Set a user's password (checked against the password policy) and re-activate the account.

Usage (from the repository root):
    .venv/bin/python scripts/reset_user_password.py EMAIL NEW_PASSWORD

Every token issued before stops working, failed logins and lockout are cleared, and
the user gets a "your password was changed" email. Uses DATABASE_URL when set, else
the local embedded server. An unknown email or a weak password prints `error: ...`
and exits 1 with nothing changed.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fastapi_server.apps.users import core
from init.script import ScriptContext, run_script  # E402 is allowed in scripts/

parser = argparse.ArgumentParser(
    description="Set a user's password (policy checked) and re-activate the account."
)
parser.add_argument("email", help="the account's email (case does not matter)")
parser.add_argument(
    "password",
    metavar="NEW_PASSWORD",
    help="8-128 characters with upper and lower case, a digit and a special character",
)


async def action(ctx: ScriptContext) -> str:
    user = await core.set_password(ctx.dbs, ctx.args.email, ctx.args.password)
    return f"password of {user.email} changed; account active, earlier tokens revoked"


if __name__ == "__main__":
    run_script(parser, action)
