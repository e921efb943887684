"""The delivery worker against real PostgreSQL and a real SMTP server."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import uuid
from email.message import EmailMessage

import pytest
from sqlalchemy import text

from fastapi_server.apps.notifications import core
from fastapi_server.apps.notifications.settings import NotificationsSettings
from fastapi_server.apps.notifications.transports import ConsoleTransport
from fastapi_server.resources.database.databases import Databases
from fastapi_server.resources.database.postgres import Database
from fastapi_server.tests.helpers.mail import SMTPCatcher, text_body
from fastapi_server.tests.helpers.processes import REPO_ROOT, free_port
from fastapi_server.tests.helpers.waiting import eventually
from fastapi_server.tests.notifications.conftest import (
    WorkerFactory,
    enqueue_committed,
    fast_settings,
    outbox_row,
)


async def _status(database: Database, message_id: uuid.UUID) -> str:
    return str((await outbox_row(database, message_id))["status"])


async def test_two_workers_deliver_each_message_exactly_once(
    committed: Database, smtp: SMTPCatcher, start_worker: WorkerFactory
) -> None:
    first, second = start_worker(), start_worker()

    async def both_listening() -> bool:
        return first.listening and second.listening

    await eventually(both_listening, what="both workers to LISTEN")
    ids = await enqueue_committed(committed, [f"user{i}@example.com" for i in range(50)])

    received = await smtp.wait_for_count(50)

    async def all_recorded() -> bool:
        async with committed.transaction() as session:
            waiting = await session.scalar(
                text("SELECT count(*) FROM notifications_outbox WHERE status <> 'sent'")
            )
        return bool(waiting == 0)

    await eventually(all_recorded, what="every row marked sent")
    message_ids = [email["Message-ID"] for email in received]
    assert sorted(message_ids) == sorted(f"<{id_}@platform.test>" for id_ in ids)
    async with committed.transaction() as session:
        rows = (
            await session.execute(
                text("SELECT status, attempts, count(*) FROM notifications_outbox GROUP BY 1, 2")
            )
        ).all()
    assert [tuple(row) for row in rows] == [("sent", 1, 50)]
    assert len(smtp.messages) == 50
    # Both took part: exactly-once must hold while they compete, not because one idled.
    async with committed.transaction() as session:
        claimers = await session.scalar(
            text("SELECT count(DISTINCT claimed_by) FROM notifications_outbox")
        )
    assert claimers == 2


async def test_message_that_always_fails_ends_failed_after_max_attempts(
    committed: Database, start_worker: WorkerFactory
) -> None:
    nobody_listens = free_port()
    worker = start_worker(fast_settings(nobody_listens, max_attempts=3, retry_base_seconds=0.01))
    [message_id] = await enqueue_committed(committed, ["doomed@example.com"])

    async def failed() -> bool:
        return await _status(committed, message_id) == "failed"

    await eventually(failed, what="the message to fail")
    worker.stop()
    row = await outbox_row(committed, message_id)
    assert row["attempts"] == 3
    assert row["sent_on"] is None
    assert row["last_error"]


def test_backoff_doubles_from_the_base_and_is_capped() -> None:
    settings = NotificationsSettings(retry_base_seconds=30, retry_max_seconds=100)
    assert [settings.backoff_seconds(n) for n in range(1, 6)] == [30, 60, 100, 100, 100]
    assert settings.backoff_seconds(500) == 100


async def test_failed_attempt_waits_out_its_backoff(committed: Database) -> None:
    settings = fast_settings(1, retry_base_seconds=60, retry_max_seconds=600)
    await enqueue_committed(committed, ["later@example.com"])
    async with committed.transaction() as session:
        [claimed] = await core.claim_due(Databases(session), settings, "test")
    async with committed.transaction() as session:
        await core.record_failure(Databases(session), settings, claimed, "boom")
    async with committed.transaction() as session:
        dbs = Databases(session)
        assert await core.claim_due(dbs, settings, "test") == []
        due_in = await core.seconds_until_next_due(dbs)
    assert due_in is not None
    assert 50 < due_in <= 60
    row = await outbox_row(committed, claimed.id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "boom")


async def test_sending_row_of_a_crashed_worker_is_reclaimed_after_its_lease(
    committed: Database, smtp: SMTPCatcher, start_worker: WorkerFactory
) -> None:
    stuck, leased = await enqueue_committed(committed, ["stuck@example.com", "leased@example.com"])
    async with committed.transaction() as session:
        await session.execute(
            text(
                "UPDATE notifications_outbox SET status = 'sending', attempts = 1, "
                "claimed_by = 'crashed', next_attempt_on = now() + "
                "CASE WHEN id = :stuck THEN interval '-1 second' ELSE interval '1 hour' END"
            ),
            {"stuck": stuck},
        )
    start_worker()

    await smtp.wait_for("stuck@example.com")

    async def sent() -> bool:
        return await _status(committed, stuck) == "sent"

    await eventually(sent, what="the reclaimed row marked sent")
    assert (await outbox_row(committed, stuck))["attempts"] == 2
    # A lease still running belongs to its worker: nobody else sends that message.
    leased_row = await outbox_row(committed, leased)
    assert (leased_row["status"], leased_row["claimed_by"]) == ("sending", "crashed")
    assert smtp.to("leased@example.com") == []


async def test_stuck_row_on_its_last_attempt_is_marked_failed(committed: Database) -> None:
    settings = fast_settings(1, max_attempts=2)
    [message_id] = await enqueue_committed(committed, ["crashy@example.com"])
    async with committed.transaction() as session:
        await session.execute(
            text(
                "UPDATE notifications_outbox SET status = 'sending', attempts = 2, "
                "next_attempt_on = now() - interval '1 second'"
            )
        )
    async with committed.transaction() as session:
        assert await core.claim_due(Databases(session), settings, "test") == []
    row = await outbox_row(committed, message_id)
    assert row["status"] == "failed"
    assert "lease expired" in row["last_error"]


async def test_notify_wakes_the_worker_without_waiting_for_the_poll(
    committed: Database, smtp: SMTPCatcher, start_worker: WorkerFactory
) -> None:
    worker = start_worker(fast_settings(smtp.port, poll_seconds=60))

    async def listening() -> bool:
        return worker.listening

    await eventually(listening, what="the worker to LISTEN")
    await enqueue_committed(committed, ["quick@example.com"])
    await smtp.wait_for("quick@example.com", timeout=10)  # far below the 60 s poll


async def test_stopping_worker_hands_back_what_it_did_not_try(
    committed: Database, database_url: str
) -> None:
    ids = await enqueue_committed(committed, [f"batch{i}@example.com" for i in range(3)])
    sent: list[EmailMessage] = []

    class StopAfterOne:
        async def send(self, email: EmailMessage, *, sender: str, recipient: str) -> None:
            sent.append(email)
            worker.stop()  # SIGTERM arrives while the first message is being sent

    from fastapi_server.apps.notifications.worker import DeliveryWorker
    from fastapi_server.lib.database_url import to_asyncpg_dsn

    worker = DeliveryWorker(
        committed, to_asyncpg_dsn(database_url), fast_settings(1), StopAfterOne(), name="w"
    )
    assert await worker.deliver_due() == 1
    rows = [await outbox_row(committed, id_) for id_ in ids]
    assert [(row["status"], row["attempts"]) for row in rows] == [
        ("sent", 1),
        ("pending", 0),
        ("pending", 0),
    ]
    assert len(sent) == 1


async def test_console_transport_logs_the_whole_message(
    committed: Database, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi_server.apps.notifications.worker import DeliveryWorker
    from fastapi_server.lib.database_url import to_asyncpg_dsn

    await enqueue_committed(committed, ["dev@example.com"], template="registration_code")
    settings = fast_settings(1, transport="console")
    worker = DeliveryWorker(committed, to_asyncpg_dsn(database_url), settings, ConsoleTransport())
    with caplog.at_level(logging.INFO):
        assert await worker.deliver_due() == 1
    logged = caplog.text
    assert "To: Ada <dev@example.com>" in logged
    assert "Subject: Your FastAPI platform verification code\n" in logged  # no code in it
    assert "Your verification code is: 424242" in logged


async def _standalone_worker(
    variables: dict[str, str], *, stderr: int
) -> asyncio.subprocess.Process:
    """``python -m fastapi_server.apps.notifications.worker`` from the repository root, with
    ``variables`` added to this environment; stdout is piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fastapi_server.apps.notifications.worker",
        cwd=REPO_ROOT,
        env={**os.environ, **variables},
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
    )


async def test_standalone_worker_delivers_and_stops_cleanly_on_sigterm(
    committed: Database, smtp: SMTPCatcher
) -> None:
    variables = {
        "NOTIFICATIONS_TRANSPORT": "smtp",
        "NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
        "NOTIFICATIONS_SMTP_PORT": str(smtp.port),
        "NOTIFICATIONS_SMTP_TLS": "none",
        "NOTIFICATIONS_FROM_EMAIL": "worker@platform.test",
        "LOG_FORMAT": "text",
    }
    process = await _standalone_worker(variables, stderr=asyncio.subprocess.STDOUT)
    try:
        [message_id] = await enqueue_committed(committed, ["standalone@example.com"])
        email = await smtp.wait_for("standalone@example.com", timeout=20)
        assert email["Message-ID"] == f"<{message_id}@platform.test>"
        assert "Hello Ada," in text_body(email)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            raw, _ = await asyncio.wait_for(process.communicate(), timeout=15)
        except TimeoutError:
            process.kill()
            raw, _ = await process.communicate()
    output = raw.decode()
    assert process.returncode == 0, output
    assert "stopped" in output
    assert "Traceback" not in output


class SlowTransport:
    """Takes ``seconds`` per message (a slow mail server); remembers each Message-ID sent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sent: list[str] = []

    async def send(self, email: EmailMessage, *, sender: str, recipient: str) -> None:
        await asyncio.sleep(self.seconds)
        self.sent.append(str(email["Message-ID"]))


async def _all_sent(database: Database) -> bool:
    async with database.transaction() as session:
        waiting = await session.scalar(
            text("SELECT count(*) FROM notifications_outbox WHERE status <> 'sent'")
        )
    return bool(waiting == 0)


async def test_a_batch_that_outlasts_its_lease_is_still_sent_once(
    committed: Database, start_worker: WorkerFactory
) -> None:
    # 8 messages of 0.3 s each in one claimed batch: 2.4 s, far past the 1 s lease.
    settings = fast_settings(1, lease_seconds=1, smtp_timeout_seconds=0.5, batch_size=8)
    transport = SlowTransport(0.3)
    first = start_worker(settings, transport=transport)
    second = start_worker(settings, transport=transport)

    async def both_listening() -> bool:
        return first.listening and second.listening

    await eventually(both_listening, what="both workers to LISTEN")
    ids = await enqueue_committed(committed, [f"slow{i}@example.com" for i in range(8)])

    async def all_sent() -> bool:
        return await _all_sent(committed)

    await eventually(all_sent, within=15, what="every row marked sent")
    assert sorted(transport.sent) == sorted(f"<{id_}@platform.test>" for id_ in ids)


async def test_a_message_taken_over_while_waiting_in_the_batch_is_not_sent(
    committed: Database, database_url: str
) -> None:
    from fastapi_server.apps.notifications.worker import DeliveryWorker
    from fastapi_server.lib.database_url import to_asyncpg_dsn

    first, taken, third = await enqueue_committed(
        committed, [f"batch{i}@example.com" for i in range(3)]
    )
    sent: list[str] = []

    class TakeOverDuringFirstSend:
        async def send(self, email: EmailMessage, *, sender: str, recipient: str) -> None:
            sent.append(recipient)
            if len(sent) == 1:  # meanwhile another worker re-claims the second message
                async with committed.transaction() as session:
                    await session.execute(
                        text(
                            "UPDATE notifications_outbox SET attempts = attempts + 1, "
                            "claimed_by = 'other', next_attempt_on = now() + interval '1 hour' "
                            "WHERE id = :id"
                        ),
                        {"id": taken},
                    )

    worker = DeliveryWorker(
        committed,
        to_asyncpg_dsn(database_url),
        fast_settings(1),
        TakeOverDuringFirstSend(),
        name="w",
    )
    assert await worker.deliver_due() == 2
    assert sent == ["batch0@example.com", "batch2@example.com"]
    rows = {id_: await outbox_row(committed, id_) for id_ in (first, taken, third)}
    assert [(row["status"], row["claimed_by"]) for row in rows.values()] == [
        ("sent", "w"),
        ("sending", "other"),  # the other worker's to send and record
        ("sent", "w"),
    ]


def test_lease_must_cover_a_send_twice_over() -> None:
    with pytest.raises(ValueError, match="NOTIFICATIONS_LEASE_SECONDS"):
        NotificationsSettings(lease_seconds=20, smtp_timeout_seconds=15)
    assert NotificationsSettings(lease_seconds=30, smtp_timeout_seconds=15).lease_seconds == 30


async def test_smtp_send_is_bounded_as_a_whole_by_the_timeout(committed: Database) -> None:
    """Each SMTP reply within the timeout, the whole conversation past it: a failed attempt."""
    from fastapi_server.apps.notifications.transports import SMTPTransport

    settings = fast_settings(1, smtp_timeout_seconds=0.5)
    with SMTPCatcher(reply_delay_seconds=0.3) as slow:
        transport = SMTPTransport(settings.model_copy(update={"smtp_port": slow.port}))
        email = EmailMessage()
        email["Subject"] = "slow"
        email.set_content("text")
        with pytest.raises(TimeoutError):
            await transport.send(email, sender="a@platform.test", recipient="b@example.com")


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"NOTIFICATIONS_TRANSPORT": "console"}, "NOTIFICATIONS_TRANSPORT=console"),
        (
            {"NOTIFICATIONS_LEASE_SECONDS": "10", "NOTIFICATIONS_SMTP_TIMEOUT_SECONDS": "15"},
            "NOTIFICATIONS_LEASE_SECONDS (10) must be at least twice",
        ),
    ],
)
async def test_standalone_worker_refuses_a_bad_configuration_in_one_line(
    variables: dict[str, str], expected: str
) -> None:
    process = await _standalone_worker(
        {"ENV": "production", "LOG_FORMAT": "text", **variables}, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    except TimeoutError:  # it started instead of refusing
        process.kill()
        await process.communicate()
        raise
    assert process.returncode == 1
    [line] = stderr.decode().splitlines()
    assert line.startswith("error: ")
    assert expected in line
    assert stdout == b""
