"""Connections to Cassandra through the async driver acsylla: clusters, sessions, one-off
statements, schema agreement, and driver errors mapped to ``StoreError``.

Nothing happens at import: a cluster attaches to the running event loop when it is created, so
``connect`` is called from inside one (the app's lifespan, the ``db`` commands).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import acsylla
from acsylla import errors as cass_errors

from mnist_api.kernel.database import StoreError, StoreUnavailableError
from mnist_api.kernel.settings import Settings

AGREEMENT_TIMEOUT_S = 30.0


class _ShardInfoFilter(logging.Filter):
    """The driver is ScyllaDB's; on Apache Cassandra it logs an ERROR per connection that it
    found no shard information, which Cassandra never has. Nothing is wrong: drop the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "sharding info" not in record.getMessage()


_SHARD_INFO_FILTER = _ShardInfoFilter()


def quiet_driver_logs() -> None:
    """Drop the driver's false shard-information errors (idempotent; called by ``connect``)."""
    driver = logging.getLogger("acsylla")
    if _SHARD_INFO_FILTER not in driver.filters:
        driver.addFilter(_SHARD_INFO_FILTER)


def cluster_for(settings: Settings) -> Any:
    """An acsylla cluster for the settings. Call inside a running event loop.

    Failure handling, for a cluster that loses a node: heartbeats on idle connections find a
    frozen node (one whose connections hang rather than close) within seconds; a request that
    is idempotent goes to a second replica when the first has not answered after the
    speculative delay; and write times are stamped by the client (monotonic), so a request that
    ran twice writes the same cells at the same time, and a later delete still wins."""
    speculative = None
    if settings.cassandra_speculative_delay_ms > 0:
        speculative = acsylla.SpeculativeExecutionPolicy(
            constant_delay_ms=settings.cassandra_speculative_delay_ms,
            max_speculative_executions=2,
        )
    return acsylla.create_cluster(
        settings.cassandra_contact_points,
        port=settings.cassandra_port,
        username=settings.cassandra_username,
        password=settings.cassandra_password,
        connect_timeout=settings.cassandra_connect_timeout_s,
        request_timeout=settings.cassandra_request_timeout_s,
        consistency=getattr(acsylla.Consistency, settings.cassandra_consistency),
        serial_consistency=acsylla.Consistency.SERIAL,
        constant_reconnect_delay_ms=settings.cassandra_reconnect_delay_ms,
        load_balance_dc_aware=settings.cassandra_local_dc,
        heartbeat_interval_sec=settings.cassandra_heartbeat_s,
        idle_timeout_sec=settings.cassandra_idle_timeout_s,
        speculative_execution_policy=speculative,
        timestamp_gen="monotonic",
        application_name="mnist-api",
        log_level="error",
    )


def cass_error(exc: Exception, action: str) -> StoreError:
    """Map a driver error: unreachable or timed out is ``StoreUnavailableError``."""
    unavailable = (
        cass_errors.CassErrorSourceLib,
        cass_errors.CassErrorServerUnavailable,
        cass_errors.CassErrorServerOverloaded,
        cass_errors.CassErrorServerIsBootstrapping,
        cass_errors.CassErrorServerReadTimeout,
        cass_errors.CassErrorServerWriteTimeout,
        cass_errors.CassErrorServerReadFailure,
        cass_errors.CassErrorServerWriteFailure,
    )
    kind = StoreUnavailableError if isinstance(exc, unavailable) else StoreError
    return kind(f"Cassandra {action}: {type(exc).__name__}: {exc}")


async def connect(settings: Settings, *, keyspace: str | None, wait_s: float) -> tuple[Any, Any]:
    """Create the cluster and a session, retrying for ``wait_s`` while the node is unreachable."""
    quiet_driver_logs()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        cluster = cluster_for(settings)
        try:
            return cluster, await cluster.create_session(keyspace=keyspace)
        except cass_errors.CassException as exc:
            cluster.destroy()
            if loop.time() >= deadline:
                hosts = ",".join(settings.cassandra_contact_points)
                raise StoreUnavailableError(
                    f"cannot connect to Cassandra at {hosts}:{settings.cassandra_port} "
                    f"({type(exc).__name__}); is it running? (scripts/cassandra start)"
                ) from exc
            await asyncio.sleep(1.0)


async def disconnect(cluster: Any, session: Any) -> None:
    """Close the session and free the cluster's sockets and threads."""
    try:
        if session is not None:
            await session.close()
    finally:
        if cluster is not None:
            cluster.destroy()


async def run(session: Any, cql: str, params: list[Any] | None = None, **kw: Any) -> Any:
    """One statement, unprepared: for schema work and bookkeeping, never on a request's path."""
    try:
        return await session.execute(acsylla.create_statement(cql, parameters=params, **kw))
    except cass_errors.CassException as exc:
        raise cass_error(exc, f"failed on {cql.split()[0]}") from exc


async def wait_for_schema_agreement(session: Any, limit_s: float = AGREEMENT_TIMEOUT_S) -> None:
    """Wait until every node reports the same schema version (after DDL)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        local = await run(session, "SELECT schema_version FROM system.local")
        peers = await run(session, "SELECT schema_version FROM system.peers")
        versions = {str(local.first().column_value("schema_version"))}
        versions |= {str(row.column_value("schema_version")) for row in peers}
        versions.discard("None")
        if len(versions) <= 1:
            return
        if loop.time() >= deadline:
            raise StoreError(f"no schema agreement after {limit_s:g} s: {sorted(versions)}")
        await asyncio.sleep(0.2)
