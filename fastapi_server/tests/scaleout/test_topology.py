"""Scale-out with real parts: nginx before 3 API instances, PgBouncer in transaction mode,
2 standalone delivery workers (the topology in ``conftest.py``).

The figures a deployment cares about (failed requests when an instance dies or is
restarted, how fast a flag change spreads) are printed in the terminal summary.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fastapi_server.config import Settings
from fastapi_server.resources.database.postgres import Database
from fastapi_server.tests.helpers.users import STRONG_PASSWORD
from fastapi_server.tests.scaleout.conftest import (
    DB_POOL_SIZE,
    DRAIN_SECONDS,
    INSTANCES,
    PGBOUNCER_POOL_SIZE,
    WORKERS,
    Topology,
)
from fastapi_server.tests.scaleout.topology import Load

FLAG = "FF_SCALEOUT_CHECK"
LOADED_PATH = "/feature-flags"  # read from the database (through PgBouncer) on every request
REGISTRATIONS = 200
TIMED_OUT = "canceling statement due to statement timeout"


def _flag_value(client: httpx.Client) -> bool:
    """The flag's value for anonymous callers (evaluate lists only the flags that are on)."""
    answer = client.get("/feature-flags/evaluate")
    answer.raise_for_status()
    return bool(answer.json().get(FLAG, False))


def _seconds_until(check: object, within: float) -> float:
    """Poll ``check()`` until true; the seconds it took (fails after ``within``)."""
    start = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - start > within:
            raise AssertionError(f"not true within {within}s")
        time.sleep(0.01)
    return time.monotonic() - start


def test_a_flag_changed_with_psql_reaches_every_instance_within_a_second(
    topology: Topology,
) -> None:
    topology.psql(
        "INSERT INTO feature_flags (codename, is_active, rollout_percentage, created_by, "
        f"updated_by) VALUES ('{FLAG}', false, 100, 'psql', 'psql')"
    )
    clients = {
        instance.name: httpx.Client(base_url=instance.url, timeout=2)
        for instance in topology.instances
    }
    balanced = httpx.Client(base_url=topology.nginx.url, timeout=2)
    for client in clients.values():
        _seconds_until(lambda client=client: _flag_value(client) is False, within=5)

    seen_after: dict[str, float] = {}
    started = threading.Event()

    def watch(name: str, client: httpx.Client) -> None:
        started.wait()
        seen_after[name] = _seconds_until(lambda: _flag_value(client) is True, within=5)

    watchers = [threading.Thread(target=watch, args=item) for item in clients.items()]
    for watcher in watchers:
        watcher.start()
    topology.psql(f"UPDATE feature_flags SET is_active = true WHERE codename = '{FLAG}'")
    started.set()  # measured from the commit
    for watcher in watchers:
        watcher.join()
    # Through the balancer: enough answers in a row to have asked every instance twice.
    through_nginx = _seconds_until(
        lambda: all(_flag_value(balanced) for _ in range(2 * INSTANCES)), within=5
    )
    for client in (*clients.values(), balanced):
        client.close()

    figures = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in seen_after.items())
    topology.figures.append(f"flag propagation after the psql commit: {figures}")
    assert len(seen_after) == INSTANCES
    assert max(seen_after.values()) < 1.0, seen_after
    assert through_nginx < 1.0


def _register(client: httpx.Client, number: int) -> str:
    email = f"scale{number}@example.com"
    registered = client.post(
        "/register",
        json={"email": email, "password": STRONG_PASSWORD, "first_name": "S", "last_name": "O"},
    )
    assert registered.status_code == 201, registered.text
    requested = client.post("/auth/request-verification-token", json={"email": email})
    assert requested.status_code == 200, requested.text
    return email


def test_every_registration_gets_exactly_one_email_from_two_competing_workers(
    topology: Topology,
) -> None:
    with (
        httpx.Client(base_url=topology.nginx.url, timeout=30) as client,
        ThreadPoolExecutor(max_workers=6) as pool,
    ):
        emails = set(pool.map(lambda number: _register(client, number), range(REGISTRATIONS)))

    deadline = time.monotonic() + 60
    while len(topology.smtp.messages) < REGISTRATIONS and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # a second delivery of any message would arrive by now
    with topology.smtp.lock:
        recipients = Counter(envelope.rcpt_tos[0].lower() for envelope in topology.smtp.envelopes)
    assert set(recipients) == emails
    assert set(recipients.values()) == {1}, recipients.most_common(3)
    rows = topology.psql(
        "SELECT status, count(*) FROM notifications_outbox GROUP BY status ORDER BY status"
    )
    assert rows == f"sent|{REGISTRATIONS}"
    by_worker = topology.psql(
        "SELECT string_agg(n::text, ' + ' ORDER BY n DESC) FROM "
        "(SELECT count(*) AS n FROM notifications_outbox GROUP BY split_part(claimed_by, ':', 2)) w"
    )
    topology.figures.append(
        f"{REGISTRATIONS} registrations through nginx: {REGISTRATIONS} emails, each once; "
        f"sent per worker process: {by_worker}"
    )


def test_postgresql_sees_only_pgbouncers_server_connections_and_the_listeners(
    topology: Topology,
) -> None:
    load = Load(f"{topology.nginx.url}{LOADED_PATH}", topology.workdir, connections=16)
    samples: list[tuple[int, int]] = []
    try:
        time.sleep(0.5)
        for _ in range(8):
            row = topology.psql(
                "SELECT count(*) FILTER (WHERE application_name IN ('api', "
                "'notifications-worker')), count(*) FILTER (WHERE application_name = "
                "'api:feature-flags-listener' OR application_name LIKE 'notifications:%') "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend'"
            )
            pooled, listeners = map(int, row.split("|"))
            samples.append((pooled, listeners))
            time.sleep(0.2)
    finally:
        result = load.finish()
    most = max(pooled for pooled, _ in samples)
    topology.figures.append(
        f"server connections under load: at most {most} through PgBouncer (default_pool_size "
        f"{PGBOUNCER_POOL_SIZE}, clients {INSTANCES} x DB_POOL_SIZE {DB_POOL_SIZE} + workers) "
        f"+ {samples[-1][1]} listeners; load: {result.summary()}"
    )
    assert result.failed == 0, result.summary()
    assert 0 < most <= PGBOUNCER_POOL_SIZE, samples
    assert {listeners for _, listeners in samples} == {INSTANCES + WORKERS}


async def test_the_statement_timeout_holds_through_pgbouncer(topology: Topology) -> None:
    settings = Settings(
        database_url=topology.pooled_url,
        database_listen_url=topology.direct_url,
        db_pgbouncer=True,
        db_statement_timeout_ms=300,
        db_pool_size=2,
    )
    database = Database.from_settings(settings, "test:timeout")
    try:
        with pytest.raises(DBAPIError, match=TIMED_OUT):
            async with database.transaction() as session:
                await session.execute(text("SELECT pg_sleep(2)"))
        with pytest.raises(DBAPIError, match=TIMED_OUT):
            async with database.reads() as scope:
                await scope.session.execute(text("SELECT pg_sleep(2)"))
        async with database.reads() as scope:
            inside = await scope.session.scalar(text("SELECT current_setting('statement_timeout')"))
    finally:
        await database.dispose()
    assert inside == "300ms"
    # SET LOCAL ended with its transaction: no server connection behind PgBouncer kept it.
    plain = await asyncpg.connect(topology.pooled_url, statement_cache_size=0)
    try:
        outside = {await plain.fetchval("SHOW statement_timeout") for _ in range(10)}
    finally:
        await plain.close()
    assert outside == {"0"}

    # As a startup parameter (the direct connection's way), PgBouncer refuses it.
    direct_style = Settings(database_url=topology.pooled_url, db_statement_timeout_ms=300)
    refused = Database.from_settings(direct_style, "test:startup-parameter")
    try:
        with pytest.raises(DBAPIError, match="unsupported startup parameter"):
            async with refused.transaction() as session:
                await session.execute(text("SELECT 1"))
    finally:
        await refused.dispose()


def _under_load(topology: Topology, connections: int = 8) -> Load:
    load = Load(f"{topology.nginx.url}{LOADED_PATH}", topology.workdir, connections)
    time.sleep(1.0)
    return load


def _wait_until_all_ready(topology: Topology) -> None:
    for instance in topology.instances:
        _seconds_until(
            lambda url=instance.url: httpx.get(f"{url}/_ready", timeout=2).status_code == 200,
            within=10,
        )


def test_a_pgbouncer_restart_under_load_answers_503_at_worst_and_recovers(
    topology: Topology,
) -> None:
    load = _under_load(topology)
    try:
        topology.pgbouncer.stop()
        time.sleep(0.5)
        topology.pgbouncer.start()

        def recovered() -> bool:
            answers = [httpx.get(f"{topology.nginx.url}{LOADED_PATH}", timeout=5) for _ in range(6)]
            return all(answer.status_code == 200 for answer in answers)

        recovery = _seconds_until(recovered, within=10)  # from PgBouncer accepting again
        time.sleep(0.5)
    finally:
        result = load.finish()
    topology.figures.append(
        f"PgBouncer restart under load: API back {recovery:.2f} s after PgBouncer; "
        f"{result.summary()}"
    )
    assert set(result.statuses) <= {200, 503}, result.summary()
    assert not any(result.socket_errors.values()), result.summary()
    assert recovery < 5.0


def test_a_rolling_restart_under_load_fails_no_request(topology: Topology) -> None:
    _wait_until_all_ready(topology)
    load = _under_load(topology)
    drained: list[int] = []
    try:
        for instance in topology.instances:
            instance.send(signal.SIGTERM)
            time.sleep(DRAIN_SECONDS / 4)
            try:
                drained.append(httpx.get(f"{instance.url}/_ready", timeout=2).status_code)
            except httpx.HTTPError as exc:
                raise AssertionError(
                    f"{instance.name}: {exc!r}\n{instance.output()[-4000:]}"
                ) from exc
            assert instance.wait(timeout=DRAIN_SECONDS + 20) is not None, instance.output()
            instance.start()
            time.sleep(0.5)
    finally:
        result = load.finish()
    topology.figures.append(
        f"rolling restart (SIGTERM, {DRAIN_SECONDS:g} s drain, start) of {INSTANCES} instances "
        f"under load: {result.failed} failed; {result.summary()}"
    )
    assert drained == [503] * INSTANCES  # /_ready said "draining" while requests were served
    assert result.failed == 0, result.summary()
    assert result.statuses[200] > 0


def test_an_instance_killed_under_load_costs_at_most_the_requests_in_flight(
    topology: Topology,
) -> None:
    victim = topology.instances[0]
    load = _under_load(topology)
    try:
        victim.stop(signal.SIGKILL)
        time.sleep(2.0)
    finally:
        result = load.finish()  # the last test: the victim stays down
    topology.figures.append(
        f"{victim.name} killed (SIGKILL) under load: {result.failed} failed; {result.summary()}"
    )
    assert result.socket_errors.get("timeout", 0) == 0, result.summary()  # nothing hangs
    assert result.failed <= 8, result.summary()  # at most one in flight per connection
    assert result.statuses[200] > 0
