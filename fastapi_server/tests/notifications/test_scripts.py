"""``scripts/retry_notifications.py`` run as an ops person runs it."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from fastapi_server.resources.database.postgres import Database
from fastapi_server.tests.helpers.processes import run_script
from fastapi_server.tests.notifications.conftest import enqueue_committed, outbox_row


async def _set(database: Database, message_id: uuid.UUID, assignments: str) -> None:
    async with database.transaction() as session:
        await session.execute(
            text(f"UPDATE notifications_outbox SET {assignments} WHERE id = :id"),
            {"id": message_id},
        )


async def test_retry_requeues_waiting_and_stuck_then_failed_with_the_flag(
    committed: Database,
) -> None:
    waiting, stuck, failed, sent = await enqueue_committed(
        committed, [f"{name}@example.com" for name in ("waiting", "stuck", "failed", "sent")]
    )
    await _set(
        committed,
        waiting,
        "attempts = 2, last_error = 'timeout', next_attempt_on = now() + interval '1 hour'",
    )
    await _set(
        committed,
        stuck,
        "status = 'sending', attempts = 1, next_attempt_on = now() - interval '1 minute'",
    )
    await _set(committed, failed, "status = 'failed', attempts = 8, last_error = 'refused'")
    await _set(committed, sent, "status = 'sent', attempts = 1, sent_on = now()")

    result = run_script("retry_notifications.py")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "requeued 1 waiting, 1 stuck and 0 failed messages; "
        "1 failed left as they are (add --failed to retry them)"
    )
    rows = {key: await outbox_row(committed, key) for key in (waiting, stuck, failed, sent)}
    assert (rows[waiting]["status"], rows[waiting]["attempts"]) == ("pending", 2)
    assert rows[waiting]["next_attempt_on"] <= rows[waiting]["updated_on"]
    assert (rows[stuck]["status"], rows[stuck]["attempts"]) == ("pending", 1)
    assert rows[failed]["status"] == "failed"
    assert rows[sent]["status"] == "sent"

    result = run_script("retry_notifications.py", "--failed")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "requeued 0 waiting, 0 stuck and 1 failed messages"
    row = await outbox_row(committed, failed)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 0, "refused")
    assert (await outbox_row(committed, sent))["status"] == "sent"


def test_retry_help_says_what_it_does() -> None:
    result = run_script("retry_notifications.py", "--help")
    assert result.returncode == 0
    assert "--failed" in result.stdout


def test_retry_with_a_bad_argument_is_one_error_line() -> None:
    result = run_script("retry_notifications.py", "--everything")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
