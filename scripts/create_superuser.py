"""Make an account an active, verified superuser, creating it if it is missing.

Usage (from the repository root):
    .venv/bin/python scripts/create_superuser.py EMAIL [--first-name NAME] [--last-name NAME]

The password is read from the SUPERUSER_PASSWORD environment variable (automation),
otherwise asked twice without echo. It must pass the password policy. For an existing
account, the password is replaced only if it differs (then earlier tokens stop working).
Uses DATABASE_URL when set, else the local embedded server. A weak password or a
malformed email prints `error: ...` and exits 1 with nothing changed.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fastapi_server.apps.users import core
from init.script import (
    ScriptContext,
    ScriptError,
    read_secret,
    run_script,
)  # E402 is allowed in scripts/

PASSWORD_VARIABLE = "SUPERUSER_PASSWORD"  # noqa: S105 -- a variable name
password = ""  # read before the database is opened: no transaction waits on a person

parser = argparse.ArgumentParser(
    description="Make an account an active, verified superuser (created if missing). "
    f"The password comes from ${PASSWORD_VARIABLE}, else it is asked without echo."
)
parser.add_argument("email", help="the account's email")
parser.add_argument("--first-name", default="Admin", help="for a new account (default: Admin)")
parser.add_argument("--last-name", default="", help="for a new account (default: empty)")


async def action(ctx: ScriptContext) -> str:
    user, created = await core.create_superuser(
        ctx.dbs,
        email=ctx.args.email,
        password=password,
        first_name=ctx.args.first_name,
        last_name=ctx.args.last_name,
    )
    verb = "created" if created else "updated"
    return f"{verb} superuser {user.email} (active, verified, superuser)"


if __name__ == "__main__":
    parser.parse_args()  # --help and usage errors come before any prompt
    try:
        password = read_secret(PASSWORD_VARIABLE, "Password")
    except (ScriptError, KeyboardInterrupt) as exc:
        print(f"error: {exc or 'interrupted'}; nothing was changed", file=sys.stderr)
        sys.exit(1)
    run_script(parser, action)
