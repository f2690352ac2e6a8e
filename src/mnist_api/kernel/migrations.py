"""Alembic-like migrations for the Cassandra schema and data: the numbered steps in ``cql/``.

A step is a CQL file (``NNNN_name.cql``, statements separated by ``;``) or a Python file
(``NNNN_name.py``) that defines ``async def upgrade(step: DataStep) -> None``, for work that CQL
alone cannot do, such as moving rows to a new layout. A Python step must be resumable and
idempotent (killed halfway and run again, it finishes the job once) and report its progress
through ``step.progress``. Steps are read at upgrade time; nothing runs at import.

``mnist-api db upgrade`` creates the keyspace (replication from the settings) and applies the
pending steps in order, waiting for schema agreement after each DDL statement. Applied versions
are recorded with the SHA-256 of their file; a file edited after it was applied is refused. Two
processes upgrading at once do not both apply a step: the upgrade holds a lightweight-transaction
lock with a TTL, so a crashed upgrader cannot block others for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import inspect
import os
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from mnist_api.kernel.cassandra import connect, disconnect, run, wait_for_schema_agreement
from mnist_api.kernel.database import StoreError, StoreUnavailableError
from mnist_api.kernel.settings import Settings, replication_map

FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(cql|py)$")
LOCK_TTL_S = 300
LOCK_WAIT_S = 120.0


class MigrationError(StoreError):
    """The migrations or the recorded schema are inconsistent; the message says how."""


@dataclass
class DataStep:
    """What a Python step gets: the session (its keyspace in use), the settings, and a way to
    report progress (for example ``step.progress(f"{moved} of {total} rows")``)."""

    session: Any
    settings: Settings
    progress: Callable[[str], None] = field(default=print)

    @property
    def keyspace(self) -> str:
        return self.settings.cassandra_keyspace


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    @property
    def kind(self) -> str:
        return self.path.suffix.removeprefix(".")

    def statements(self) -> tuple[str, ...]:
        """The CQL statements of a ``.cql`` step."""
        text = self.path.read_text(encoding="utf-8")
        lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
        return tuple(s.strip() for s in "\n".join(lines).split(";") if s.strip())

    def data_step(self) -> Callable[[DataStep], Any]:
        """The ``upgrade`` coroutine function of a ``.py`` step, loaded from its file now."""
        spec = importlib.util.spec_from_file_location(f"mnist_migration_{self.label}", self.path)
        if spec is None or spec.loader is None:
            raise MigrationError(f"{self.path.name} cannot be loaded")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        upgrade = getattr(module, "upgrade", None)
        if not inspect.iscoroutinefunction(upgrade):
            raise MigrationError(f"{self.path.name} defines no `async def upgrade(step)`")
        return upgrade


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


def load_migrations(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"no migrations folder at {directory}")
    found: list[Migration] = []
    paths = sorted([*directory.glob("*.cql"), *directory.glob("[0-9]*.py")])
    for path in paths:
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.cql or .py")
        found.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                path=path,
                checksum=hashlib.sha256(path.read_bytes()).hexdigest(),
            )
        )
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"{migration.path.name}: expected version {expected:04d}; versions must run "
                "1, 2, 3... without gaps or repeats"
            )
    return found


class Migrator:
    def __init__(
        self,
        settings: Settings,
        session: Any,
        migrations: list[Migration],
        progress: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.session = session
        self.keyspace = settings.cassandra_keyspace
        self.migrations = migrations
        self.progress = progress
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
                    f"{LOCK_TTL_S} s after it was last renewed, or, if that upgrade was killed, "
                    "`mnist-api db unlock` releases it now"
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
        keeper = asyncio.create_task(self._keep_lock(), name="migration-lock")
        done: list[Migration] = []
        try:
            pending = self.check(await self.applied())  # re-read under the lock
            await run(self.session, f"USE {self.keyspace}")
            for migration in pending:
                if migration.kind == "cql":
                    for statement in migration.statements():
                        await run(self.session, statement)
                        await wait_for_schema_agreement(self.session)
                else:
                    upgrade = migration.data_step()
                    await upgrade(DataStep(self.session, self.settings, self.progress))
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
                self.progress(f"applied {migration.label}")
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await self._release()
        return done

    async def break_lock(self) -> str | None:
        """Release the lock whoever holds it (an upgrade that was killed); its holder, if any.
        Only for when no upgrade runs: the lock would otherwise expire on its own."""
        result = await run(
            self.session,
            f"SELECT owner FROM {self.keyspace}.schema_migration_lock WHERE id = 'upgrade'",
        )
        row = result.first()
        if row is None:
            return None
        await run(
            self.session, f"DELETE FROM {self.keyspace}.schema_migration_lock WHERE id = 'upgrade'"
        )
        return str(row.column_value("owner"))

    async def _keep_lock(self) -> None:
        """Renew the lock's TTL while a long step (a data step over many rows) runs."""
        cql = (
            f"UPDATE {self.keyspace}.schema_migration_lock USING TTL {LOCK_TTL_S} "
            "SET acquired_at = ? WHERE id = 'upgrade' IF owner = ?"
        )
        while True:
            await asyncio.sleep(LOCK_TTL_S / 3)
            await run(self.session, cql, [datetime.now(UTC), self.owner])

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
    """``mnist-api db upgrade|status|history|unlock``; prints what it did."""
    migrations = load_migrations(settings.cql_dir or default_cql_dir())
    cluster, session = await connect(
        settings, keyspace=None, wait_s=settings.cassandra_startup_timeout_s
    )
    try:
        migrator = Migrator(settings, session, migrations)
        if command == "upgrade":
            applied = await migrator.upgrade()  # says "applied NNNN_name" as each one is
            print(
                f"keyspace {settings.cassandra_keyspace}: schema is current "
                f"({len(migrations)} migrations, {len(applied)} applied now)"
            )
            return
        await migrator.ensure_bookkeeping()
        if command == "unlock":
            holder = await migrator.break_lock()
            print(f"released the migration lock held by {holder}" if holder else "no lock held")
            return
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
