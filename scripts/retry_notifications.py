"""Put outbox messages back in line, due now, and wake the delivery workers.

Usage:
    python scripts/retry_notifications.py            # retry waiting messages now
    python scripts/retry_notifications.py --failed   # ... and failed ones, from scratch

Without --failed: messages waiting out a retry backoff become due now, and messages left
in "sending" by a worker that died (lease expired) go back to pending; their attempt
counts are kept, so they still fail after NOTIFICATIONS_MAX_ATTEMPTS. Use it once the
mail server is fixed, instead of waiting for the backoff. Messages already sent are never
touched.

With --failed: failed messages are requeued too, with their attempt count reset to 0
(a full set of attempts again); their last_error stays until the next attempt.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi_server.apps.notifications import core
from init.script import ScriptContext, run_script

parser = argparse.ArgumentParser(
    description="Requeue outbox messages: due now, workers woken.",
    epilog="Without --failed, failed messages stay failed; sent ones are never touched.",
)
parser.add_argument(
    "--failed",
    action="store_true",
    help="also requeue failed messages, with their attempt count reset",
)


async def action(ctx: ScriptContext) -> str:
    result = await core.requeue(ctx.dbs, include_failed=ctx.args.failed)
    line = (
        f"requeued {result.pending} waiting, {result.stuck} stuck and {result.failed} failed "
        "messages"
    )
    if not ctx.args.failed:
        left = (await core.count_by_status(ctx.dbs))["failed"]
        if left:
            line += f"; {left} failed left as they are (add --failed to retry them)"
    return line


if __name__ == "__main__":
    run_script(parser, action)
