"""List every feature flag as a table (codename, active, type, rollout, listed users, label).

Usage (from the repository root):
    .venv/bin/python scripts/list_feature_flags.py

Example:
    $ .venv/bin/python scripts/list_feature_flags.py
    codename                active  type     rollout  users  label
    FF_ENABLE_REGISTRATION  True    boolean  100%     0      Enable registration

Uses DATABASE_URL when set, else the local embedded server. Changes nothing.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fastapi_server.apps.feature_flags import core
from init.script import ScriptContext, run_script  # E402 is allowed in scripts/

parser = argparse.ArgumentParser(description="List every feature flag as a table.")

HEADER = ("codename", "active", "type", "rollout", "users", "label")


def table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart, trailing spaces trimmed."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def action(ctx: ScriptContext) -> str:
    flags = await core.list_flags(ctx.dbs)
    if not flags:
        return "no feature flags"
    rows = [
        (
            flag.codename,
            str(flag.is_active),
            flag.flag_type,
            f"{flag.rollout_percentage}%",
            str(len(flag.user_ids)),
            flag.label,
        )
        for flag in flags
    ]
    return table([HEADER, *rows])


if __name__ == "__main__":
    run_script(parser, action)
