"""Set a user's password (checked against the password policy) and re-activate the account.

Usage (from the repository root):
    .venv/bin/python scripts/reset_user_password.py EMAIL

The new password is read from the NEW_PASSWORD environment variable (automation),
otherwise asked twice without echo: never from the command line, where `ps` and the
shell's history would show it. The old form `reset_user_password.py EMAIL PASSWORD`
still works, with a warning on stderr.

Every token issued before stops working, failed logins and lockout are cleared, and
the user gets a "your password was changed" email. Uses DATABASE_URL when set, else
the local embedded server. An unknown email or a weak password prints `error: ...`
and exits 1 with nothing changed.
"""

import argparse
import os
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

PASSWORD_VARIABLE = "NEW_PASSWORD"  # noqa: S105 -- a variable name
password = ""  # read before the database is opened: no transaction waits on a person

parser = argparse.ArgumentParser(
    description="Set a user's password (policy checked) and re-activate the account. "
    f"The password comes from ${PASSWORD_VARIABLE}, else it is asked without echo."
)
parser.add_argument("email", help="the account's email (case does not matter)")
parser.add_argument(
    "legacy_password",
    nargs="?",
    metavar="NEW_PASSWORD",
    help=f"deprecated (visible to other users in `ps`): use ${PASSWORD_VARIABLE} or the prompt",
)


def read_password(legacy: str | None) -> str:
    """NEW_PASSWORD when set, else the deprecated argument (with a warning), else asked
    twice on the terminal without echo."""
    if legacy and not os.environ.get(PASSWORD_VARIABLE):
        print(
            f"warning: a password on the command line is visible to other users; "
            f"set {PASSWORD_VARIABLE} or answer the prompt instead",
            file=sys.stderr,
        )
        return legacy
    return read_secret(PASSWORD_VARIABLE, "New password")


async def action(ctx: ScriptContext) -> str:
    user = await core.set_password(ctx.dbs, ctx.args.email, password)
    return f"password of {user.email} changed; account active, earlier tokens revoked"


if __name__ == "__main__":
    arguments = parser.parse_args()  # --help and usage errors come before any prompt
    try:
        password = read_password(arguments.legacy_password)
    except (ScriptError, KeyboardInterrupt) as exc:
        print(f"error: {exc or 'interrupted'}; nothing was changed", file=sys.stderr)
        sys.exit(1)
    run_script(parser, action)
