"""Alembic-like migrations for the Cassandra schema: the numbered ``.cql`` files in ``cql/``.

``mnist-api db upgrade`` creates the keyspace (replication from the settings) and applies the
pending files in order, waiting for schema agreement after each DDL statement. Applied versions
are recorded with the SHA-256 of their file; a file edited after it was applied is refused. Two
processes upgrading at once do not both apply a migration: the upgrade holds a lightweight-
transaction lock with a TTL, so a crashed upgrader cannot block others for ever.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import acsylla
from acsylla import errors as cass_errors

from mnist_api.settings import Settings, replication_map
from mnist_api.store.base import StoreError, StoreUnavailableError

FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.cql$")
LOCK_TTL_S = 300
LOCK_WAIT_S = 120.0
AGREEMENT_TIMEOUT_S = 30.0


class MigrationError(StoreError):
    """The migrations or the recorded schema are inconsistent; the message says how."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str
    statements: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    checksum: str
    applied_at: datetime
    applied_by: str


def default_cql_dir() -> Path:
    """The packaged migrations (``mnist_api/_cql`` in a wheel) or the repository's ``cql/``."""
    packaged = Path(str(resources.files("mnist_api") / "_cql"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "cql"


def split_statements(text: str) -> tuple[str, ...]:
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    return tuple(s.strip() for s in "\n".join(lines).split(";") if s.strip())


def load_migrations(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"no migrations folder at {directory}")
    found: list[Migration] = []
    for path in sorted(directory.glob("*.cql")):
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.cql")
        content = path.read_bytes()
        found.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                path=path,
                checksum=hashlib.sha256(content).hexdigest(),
                statements=split_statements(content.decode("utf-8")),
            )
        )
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"{migration.path.name}: expected version {expected:04d}; versions must run "
                "1, 2, 3... without gaps or repeats"
            )
    return found


class _ShardInfoFilter(logging.Filter):
    """The driver is ScyllaDB's; on Apache Cassandra it logs an ERROR per connection that it
    found no shard information, which Cassandra never has. Nothing is wrong: drop the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "sharding info" not in record.getMessage()


logging.getLogger("acsylla").addFilter(_ShardInfoFilter())


def cluster_for(settings: Settings) -> Any:
    """An acsylla cluster for the settings. Call inside a running event loop."""
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
    try:
        return await session.execute(acsylla.create_statement(cql, parameters=params, **kw))
    except cass_errors.CassException as exc:
        raise cass_error(exc, f"failed on {cql.split()[0]}") from exc


async def wait_for_schema_agreement(session: Any, limit_s: float = AGREEMENT_TIMEOUT_S) -> None:
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
            raise MigrationError(f"no schema agreement after {limit_s:g} s: {sorted(versions)}")
        await asyncio.sleep(0.2)


class Migrator:
    def __init__(self, settings: Settings, session: Any, migrations: list[Migration]) -> None:
        self.settings = settings
        self.session = session
        self.keyspace = settings.cassandra_keyspace
        self.migrations = migrations
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def ensure_bookkeeping(self) -> None:
        replication = replication_map(self.settings.cassandra_replication)
        options = ", ".join(
            f"'{key}': {value}" if isinstance(value, int) else f"'{key}': '{value}'"
            for key, value in replication.items()
        )
        ks = self.keyspace
        for cql in (
            f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{{options}}}",
            f"CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (version int PRIMARY KEY, "
            "name text, checksum text, applied_at timestamp, applied_by text)",
            f"CREATE TABLE IF NOT EXISTS {ks}.schema_migration_lock (id text PRIMARY KEY, "
            "owner text, acquired_at timestamp)",
        ):
            await run(self.session, cql)
            await wait_for_schema_agreement(self.session)

    async def applied(self) -> dict[int, Applied]:
        try:
            result = await run(
                self.session,
                f"SELECT version, name, checksum, applied_at, applied_by "
                f"FROM {self.keyspace}.schema_migrations",
            )
        except StoreUnavailableError:
            raise
        except StoreError as exc:
            raise MigrationError(
                f"keyspace {self.keyspace!r} has no migration records ({exc}); "
                "run `mnist-api db upgrade`"
            ) from exc
        rows = [row.as_dict() for row in result]
        return {
            int(r["version"]): Applied(
                int(r["version"]), r["name"], r["checksum"], r["applied_at"], r["applied_by"]
            )
            for r in rows
        }

    def check(self, applied: dict[int, Applied]) -> list[Migration]:
        """Verify applied files are unchanged; return the pending migrations."""
        known = {m.version: m for m in self.migrations}
        for version, record in sorted(applied.items()):
            migration = known.get(version)
            if migration is None:
                raise MigrationError(
                    f"the database has migration {version:04d}_{record.name}, which this "
                    "version of the service does not know; upgrade the service"
                )
            if migration.checksum != record.checksum:
                raise MigrationError(
                    f"{migration.path.name} was edited after it was applied (checksum "
                    f"{migration.checksum[:12]} != recorded {record.checksum[:12]}); restore "
                    "it and put the change in a new migration"
                )
        return [m for m in self.migrations if m.version not in applied]

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT_S
        cql = (
            f"INSERT INTO {self.keyspace}.schema_migration_lock (id, owner, acquired_at) "
            f"VALUES ('upgrade', ?, ?) IF NOT EXISTS USING TTL {LOCK_TTL_S}"
        )
        while True:
            result = await run(self.session, cql, [self.owner, datetime.now(UTC)])
            row = result.first().as_dict()
            if row["[applied]"]:
                return
            if loop.time() >= deadline:
                raise MigrationError(
                    f"another upgrade ({row.get('owner')}) holds the migration lock; it expires "
                    f"{LOCK_TTL_S} s after it was taken"
                )
            await asyncio.sleep(0.5)

    async def _release(self) -> None:
        await run(
            self.session,
            f"DELETE FROM {self.keyspace}.schema_migration_lock WHERE id = 'upgrade' IF owner = ?",
            [self.owner],
        )

    async def upgrade(self) -> list[Migration]:
        """Apply pending migrations under the lock; returns those this call applied."""
        await self.ensure_bookkeeping()
        await self._acquire()
        done: list[Migration] = []
        try:
            pending = self.check(await self.applied())  # re-read under the lock
            await run(self.session, f"USE {self.keyspace}")
            for migration in pending:
                for statement in migration.statements:
                    await run(self.session, statement)
                    await wait_for_schema_agreement(self.session)
                await run(
                    self.session,
                    f"INSERT INTO {self.keyspace}.schema_migrations "
                    "(version, name, checksum, applied_at, applied_by) VALUES (?, ?, ?, ?, ?)",
                    [
                        migration.version,
                        migration.name,
                        migration.checksum,
                        datetime.now(UTC),
                        self.owner,
                    ],
                )
                done.append(migration)
        finally:
            await self._release()
        return done

    async def ensure_current(self) -> None:
        """Refuse to serve on a schema that is behind or edited, naming the fix."""
        pending = self.check(await self.applied())
        if pending:
            names = ", ".join(m.label for m in pending)
            raise MigrationError(
                f"the Cassandra schema in keyspace {self.keyspace!r} is not current "
                f"(pending: {names}); run `mnist-api db upgrade`"
            )


async def run_command(settings: Settings, command: str) -> None:
    """``mnist-api db upgrade|status|history``; prints what it did."""
    migrations = load_migrations(settings.cql_dir or default_cql_dir())
    cluster, session = await connect(
        settings, keyspace=None, wait_s=settings.cassandra_startup_timeout_s
    )
    try:
        migrator = Migrator(settings, session, migrations)
        if command == "upgrade":
            applied = await migrator.upgrade()
            for migration in applied:
                print(f"applied {migration.label}")
            print(
                f"keyspace {settings.cassandra_keyspace}: schema is current "
                f"({len(migrations)} migrations, {len(applied)} applied now)"
            )
            return
        await migrator.ensure_bookkeeping()
        records = await migrator.applied()
        if command == "history":
            for version, record in sorted(records.items()):
                print(
                    f"{version:04d}_{record.name}  {record.applied_at:%Y-%m-%d %H:%M:%S}Z  "
                    f"{record.applied_by}  {record.checksum[:12]}"
                )
            return
        pending = {m.version for m in migrator.check(records)}
        for migration in migrations:
            state = "pending" if migration.version in pending else "applied"
            print(f"{migration.label:40} {state}")
    finally:
        await disconnect(cluster, session)
