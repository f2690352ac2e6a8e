"""The database the settings name, opened once per process and shared by the repositories of every
subject: SQLite (``kernel.sqlite``), Cassandra, or nothing (benchmarks only).

``CassandraDatabase`` holds one cluster and one session, created inside the running event loop
(the app's lifespan, a command); it refuses a schema that is not current, prepares the
statements a repository asks for, and runs them with driver errors mapped to ``StoreError``.
Every statement of this service is idempotent (upserts with given values, deletes, reads), so
each is marked so: the driver may send it to a second replica when the first is slow
(speculative execution, ``kernel.cassandra.cluster_for``). Logged batches are the exception;
``execute_atomically`` says why and what it does instead when one times out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import acsylla
from acsylla import errors as cass_errors

from mnist_api.kernel.cassandra import cass_error, connect, disconnect
from mnist_api.kernel.database import StoreError
from mnist_api.kernel.migrations import Migrator, default_cql_dir, load_migrations
from mnist_api.kernel.settings import Settings
from mnist_api.kernel.sqlite import SqliteDatabase

Prepared = Any  # acsylla's PreparedStatement
BATCH_BACKOFF_S = 30.0  # longer than the failure detector takes to notice a dead node
# Errors after which a write may or may not have been applied.
TIMEOUTS = (
    cass_errors.CassErrorServerWriteTimeout,
    cass_errors.CassErrorLibRequestTimedOut,
    cass_errors.CassErrorServerWriteFailure,
    cass_errors.CassErrorServerOverloaded,
)


class CassandraDatabase:
    name = "cassandra"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keyspace = settings.cassandra_keyspace
        hosts = ",".join(settings.cassandra_contact_points)
        self.location = f"keyspace {self.keyspace} at {hosts}:{settings.cassandra_port}"
        self._cluster: Any = None
        self._session: Any = None
        self._ping: Prepared = None
        self._last_timestamp = 0
        self._batches_time_out_until = 0.0

    @property
    def session(self) -> Any:
        if self._session is None:
            raise StoreError("the Cassandra store is not open")
        return self._session

    async def open(self) -> None:
        self._cluster, self._session = await connect(
            self.settings, keyspace=None, wait_s=self.settings.cassandra_startup_timeout_s
        )
        try:
            migrations = load_migrations(self.settings.cql_dir or default_cql_dir())
            await Migrator(self.settings, self._session, migrations).ensure_current()
            self._ping = (await self.prepare({"ping": "SELECT release_version FROM system.local"}))[
                "ping"
            ]
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        cluster, session = self._cluster, self._session
        self._cluster = self._session = None
        await disconnect(cluster, session)

    async def prepare(self, statements: Mapping[str, str]) -> dict[str, Prepared]:
        """Prepare each named statement once (at start-up)."""
        prepared = {}
        for key, cql in statements.items():
            try:
                prepared[key] = await self.session.create_prepared(cql)
            except cass_errors.CassException as exc:
                raise cass_error(exc, f"could not prepare {key}") from exc
        return prepared

    def _bind(self, prepared: Prepared, params: Sequence[Any]) -> Any:
        self.session  # noqa: B018 (raises when closed)
        statement = prepared.bind(list(params))
        statement.set_is_idempotent(True)
        return statement

    async def execute(
        self,
        prepared: Prepared,
        params: Sequence[Any],
        *,
        action: str,
        timestamp: int | None = None,
    ) -> Any:
        """One statement; with ``timestamp``, the write time its cells get (microseconds)."""
        statement = self._bind(prepared, params)
        if timestamp is not None:
            statement.set_timestamp(timestamp)
        try:
            return await self.session.execute(statement)
        except cass_errors.CassException as exc:
            raise cass_error(exc, f"{action} failed") from exc

    def _timestamp(self) -> int:
        """A client write time (microseconds), strictly increasing within the process."""
        self._last_timestamp = max(self._last_timestamp + 1, time.time_ns() // 1000)
        return self._last_timestamp

    async def execute_atomically(
        self, statements: Sequence[tuple[Prepared, Sequence[Any]]], *, action: str
    ) -> None:
        """The statements in one logged batch: all of them are applied, or (once the batch log
        has replayed) none.

        A logged batch needs its batch log on two other nodes; on a 3-node cluster, while the
        failure detector has not yet noticed that a node died or froze (about 20 s), the batch
        log waits for it and the batch times out. A timeout means the batch may yet be applied
        (its log may have been written), so the same writes, with the batch's own write time,
        are then sent one by one: idempotent, each can go to another replica, and whichever
        lands, the batch's or theirs, leaves the same cells. Only if they fail too is the
        request refused. After a batch timed out, batches are skipped for ``BATCH_BACKOFF_S``
        (the rows go one by one at once), so that only the first requests of a failure wait for
        a batch. (The batch itself is not marked idempotent: the driver, acsylla 1.2.0, was seen
        never to complete a speculatively executed logged batch once a node died.)"""
        stamp = self._timestamp()
        if time.monotonic() >= self._batches_time_out_until:
            batch = acsylla.create_batch_logged()
            for prepared, params in statements:
                batch.add_statement(prepared.bind(list(params)))
            batch.set_timestamp(stamp)
            batch.set_retry_policy("fallthrough")  # a timeout comes back at once, handled here
            try:
                await self.session.execute_batch(batch)
                return
            except TIMEOUTS:
                # The next requests skip the batch for a while rather than wait for it too.
                self._batches_time_out_until = time.monotonic() + BATCH_BACKOFF_S
            except cass_errors.CassException as exc:
                raise cass_error(exc, f"{action} failed") from exc

        await asyncio.gather(
            *(
                self.execute(prepared, params, action=action, timestamp=stamp)
                for prepared, params in statements
            )
        )

    async def ping(self) -> None:
        await self.execute(self._ping, [], action="ping")


class NullDatabase:
    """No database (``MNIST_API_STORE=none``): the benchmark's ceiling run stores nothing."""

    name = "none"
    location = "nowhere (storage off)"

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None


Database = SqliteDatabase | CassandraDatabase | NullDatabase


def open_database(settings: Settings) -> Database:
    """The database the settings name (not yet opened: ``await database.open()``)."""
    if settings.store == "cassandra":
        return CassandraDatabase(settings)
    if settings.store == "none":
        return NullDatabase()
    return SqliteDatabase(settings.sqlite_path)
