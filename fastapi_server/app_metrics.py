"""The metrics the apps' tables give at scrape time, for ``resources/metrics.py``, which
knows no app: ``main.py`` hands ``database_families`` to ``metrics.instrument``."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client.core import GaugeMetricFamily, Metric

from fastapi_server.apps.notifications import core as notifications
from fastapi_server.apps.users import core as users
from fastapi_server.resources.database.databases import Databases

logger = logging.getLogger(__name__)

SCRAPE_QUERY_TIMEOUT_SECONDS = 2.0


async def database_families(dbs: Databases) -> list[Metric]:
    """What the database says right now: the outbox, locked accounts, and whether it answered."""
    up = GaugeMetricFamily("database_up", "1 when the database answered this scrape's queries.")
    try:
        async with asyncio.timeout(SCRAPE_QUERY_TIMEOUT_SECONDS):
            counts = await notifications.count_by_status(dbs)
            oldest = await notifications.oldest_unsent_age_seconds(dbs)
            locked = await users.locked_account_count(dbs)
    except Exception as exc:  # the process's own numbers are still worth a scrape
        logger.warning("metrics: database query failed: %s", exc.__class__.__name__)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    outbox = GaugeMetricFamily(
        "notifications_outbox_messages", "Outbox messages by status.", labels=["status"]
    )
    for status, count in counts.items():
        outbox.add_metric([status], count)
    age = GaugeMetricFamily(
        "notifications_outbox_oldest_unsent_age_seconds",
        "Seconds the oldest message still to be sent (pending or sending) has waited; "
        "0 when none waits.",
    )
    age.add_metric([], oldest or 0.0)
    locked_family = GaugeMetricFamily(
        "users_locked_accounts", "Accounts locked out of logging in after failed attempts."
    )
    locked_family.add_metric([], locked)
    return [up, outbox, age, locked_family]
