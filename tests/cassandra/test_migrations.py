"""Migrations in cql/, applied alembic-style to a real node."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from mnist_api.kernel.cassandra import connect, disconnect, run
from mnist_api.kernel.migrations import (
    MigrationError,
    Migrator,
    default_cql_dir,
    load_migrations,
)
from tests.fixtures.apps import running_app
from tests.fixtures.cassandra import cassandra_settings

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.cassandra]


@pytest_asyncio.fixture(loop_scope="session")
async def keyspace() -> AsyncIterator[str]:
    """An empty keyspace name, dropped afterwards."""
    name = f"mnist_mig_{secrets.token_hex(4)}"
    yield name
    cluster, session = await connect(cassandra_settings(name), keyspace=None, wait_s=5)
    await run(session, f"DROP KEYSPACE IF EXISTS {name}")
    await disconnect(cluster, session)


async def migrator(keyspace: str, cql_dir: Path | None = None) -> tuple[object, object, Migrator]:
    settings = cassandra_settings(keyspace)
    cluster, session = await connect(settings, keyspace=None, wait_s=5)
    migrations = load_migrations(cql_dir or default_cql_dir())
    return cluster, session, Migrator(settings, session, migrations)


class TestUpgrade:
    async def test_applies_in_order_once(self, keyspace: str) -> None:
        cluster, session, m = await migrator(keyspace)
        try:
            first = await m.upgrade()
            assert [x.version for x in first] == [x.version for x in m.migrations]
            assert await m.upgrade() == []
            applied = await m.applied()
            assert sorted(applied) == [x.version for x in m.migrations]
            assert all(applied[x.version].checksum == x.checksum for x in m.migrations)
            await m.ensure_current()
        finally:
            await disconnect(cluster, session)

    async def test_two_upgraders_at_once_apply_each_migration_once(self, keyspace: str) -> None:
        a = await migrator(keyspace)
        b = await migrator(keyspace)
        try:
            done_a, done_b = await asyncio.gather(a[2].upgrade(), b[2].upgrade())
            versions_a = {x.version for x in done_a}
            versions_b = {x.version for x in done_b}
            assert not versions_a & versions_b
            assert versions_a | versions_b == {x.version for x in a[2].migrations}
            owners = {r.applied_by for r in (await a[2].applied()).values()}
            assert len(owners) == 1
        finally:
            await disconnect(a[0], a[1])
            await disconnect(b[0], b[1])

    async def test_edited_migration_is_refused(self, keyspace: str, tmp_path: Path) -> None:
        cql = tmp_path / "cql"
        shutil.copytree(default_cql_dir(), cql)
        cluster, session, m = await migrator(keyspace, cql)
        try:
            await m.upgrade()
            first = sorted(cql.glob("*.cql"))[0]
            first.write_text(first.read_text() + "\n-- an afterthought\n")
            cluster2, session2, edited = await migrator(keyspace, cql)
            try:
                with pytest.raises(MigrationError, match="was edited after it was applied"):
                    await edited.upgrade()
                with pytest.raises(MigrationError, match="was edited after it was applied"):
                    await edited.ensure_current()
            finally:
                await disconnect(cluster2, session2)
        finally:
            await disconnect(cluster, session)

    async def test_a_python_data_step_runs_in_order_reports_progress_and_resumes(
        self, keyspace: str, tmp_path: Path
    ) -> None:
        """A data step killed halfway is not recorded; run again, it finishes the job once."""
        cql = tmp_path / "cql"
        shutil.copytree(default_cql_dir(), cql)
        first = len(load_migrations(cql)) + 1
        (cql / f"{first:04d}_notes.cql").write_text(
            "CREATE TABLE IF NOT EXISTS notes (k int PRIMARY KEY, v text);"
        )
        (cql / f"{first + 1:04d}_fill_notes.py").write_text(
            "from pathlib import Path\n"
            "from mnist_api.kernel.cassandra import run\n\n\n"
            "async def upgrade(step):\n"
            "    marker = Path(__file__).with_name('fail-once')\n"
            "    for k in range(5):\n"
            "        await run(step.session, f'INSERT INTO {step.keyspace}.notes (k, v) '\n"
            "                  'VALUES (?, ?)', [k, f'note {k}'])\n"
            "        step.progress(f'{k + 1} of 5 notes')\n"
            "        if k == 2 and marker.exists():\n"
            "            marker.unlink()\n"
            "            raise RuntimeError('killed halfway')\n"
        )
        (cql / "fail-once").touch()
        messages: list[str] = []
        cluster, session, m = await migrator(keyspace, cql)
        m.progress = messages.append
        try:
            with pytest.raises(RuntimeError, match="killed halfway"):
                await m.upgrade()
            assert max(await m.applied()) == first  # the CQL step, not the data step
            notes = [text for text in messages if text.endswith(" notes")]  # the step's own
            assert notes == ["1 of 5 notes", "2 of 5 notes", "3 of 5 notes"]
            done = await m.upgrade()
            assert [x.label for x in done] == [f"{first + 1:04d}_fill_notes"]
            assert done[0].kind == "py"
            rows = await run(session, f"SELECT k, v FROM {keyspace}.notes")
            assert sorted((r.as_dict()["k"], r.as_dict()["v"]) for r in rows) == [
                (k, f"note {k}") for k in range(5)
            ]
            assert messages[-2:] == ["5 of 5 notes", f"applied {first + 1:04d}_fill_notes"]
            await m.ensure_current()
        finally:
            await disconnect(cluster, session)

    async def test_file_names_and_sequence_are_checked(self, tmp_path: Path) -> None:
        (tmp_path / "0001_a.cql").write_text("CREATE TABLE a (k int PRIMARY KEY);")
        (tmp_path / "0003_c.cql").write_text("CREATE TABLE c (k int PRIMARY KEY);")
        with pytest.raises(MigrationError, match="expected version 0002"):
            load_migrations(tmp_path)
        (tmp_path / "0003_c.cql").unlink()
        (tmp_path / "2_b.cql").write_text("")
        with pytest.raises(MigrationError, match=r"NNNN_name\.cql"):
            load_migrations(tmp_path)


class TestServiceChecksSchema:
    async def test_api_refuses_a_schema_that_is_not_current(
        self, keyspace: str, model_root: Path, tmp_path: Path
    ) -> None:
        with pytest.raises(MigrationError, match=r"run `mnist-api db upgrade`"):
            async with running_app(
                model_root,
                store="cassandra",
                cassandra_keyspace=keyspace,
                cassandra_consistency="ONE",
            ):
                pass

    async def test_cli_upgrade_status_history(self, keyspace: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_API_")}
        env |= {"MNIST_API_CASSANDRA_KEYSPACE": keyspace, "MNIST_API_CASSANDRA_CONSISTENCY": "ONE"}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "mnist_api", "db", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        status = await asyncio.to_thread(cli, "status")
        assert status.returncode == 0, status.stderr
        assert "0001_predictions" in status.stdout
        assert "pending" in status.stdout
        upgrade = await asyncio.to_thread(cli, "upgrade")
        assert upgrade.returncode == 0, upgrade.stderr
        assert "applied 0001_predictions" in upgrade.stdout
        status = await asyncio.to_thread(cli, "status")
        assert "pending" not in status.stdout
        assert "applied" in status.stdout
        history = await asyncio.to_thread(cli, "history")
        assert history.stdout.startswith("0001_predictions")
