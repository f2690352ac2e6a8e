"""The database the settings name, opened once per process and shared by the repositories of every
subject: SQLite (``kernel.sqlite``), Cassandra, or nothing (benchmarks only).

``CassandraDatabase`` holds one cluster and one session, created inside the running event loop
(the app's lifespan, a command); it refuses a schema that is not current, prepares the
statements a repository asks for, and runs them with driver errors mapped to ``StoreError``.
Every statement of this service is idempotent (upserts with given values, deletes, reads), so
each is marked so: the driver may send it to a second replica when the first is slow
(speculative execution, ``kernel.cassandra.cluster_for``).
"""

from __future__ import annotations

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

    async def execute(self, prepared: Prepared, params: Sequence[Any], *, action: str) -> Any:
        statement = self._bind(prepared, params)
        try:
            return await self.session.execute(statement)
        except cass_errors.CassException as exc:
            raise cass_error(exc, f"{action} failed") from exc

    async def execute_batch(
        self, statements: Sequence[tuple[Prepared, Sequence[Any]]], *, action: str
    ) -> None:
        """The statements in one logged batch: all of them are applied, or (once the batch log
        has replayed) none."""
        batch = acsylla.create_batch_logged()
        for prepared, params in statements:
            batch.add_statement(self._bind(prepared, params))
        batch.set_is_idempotent(True)
        try:
            await self.session.execute_batch(batch)
        except cass_errors.CassException as exc:
            raise cass_error(exc, f"{action} failed") from exc

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
