"""Plain-SQL migrations applied in order, each recorded with its checksum.

Every run takes a transaction-level advisory lock first, so API replicas starting together
apply each migration exactly once; a run with nothing pending is a cheap no-op.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from api.db.connect import connect
from api.errors import MigrationError
from backup.restore import unfinished

# An arbitrary constant shared by every vaxvault process: "the migration lock".
MIGRATION_LOCK_KEY = 0x7661785F6D6967
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS vaxvault_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """Every migration shipped in api/db/migrations, in version order."""
    found = []
    for entry in resources.files("api.db.migrations").iterdir():
        match = _FILENAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version number: {versions}")
    return found


async def applied_versions(conn: asyncpg.Connection) -> dict[int, str]:
    """version -> checksum of what this database has applied (empty when never migrated)."""
    exists = await conn.fetchval("SELECT to_regclass('vaxvault_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM vaxvault_migrations")
    return {row["version"]: row["checksum"] for row in rows}


async def pending_migrations(conn: asyncpg.Connection) -> list[Migration]:
    """Migrations not yet applied; raise MigrationError if an applied one was edited."""
    applied = await applied_versions(conn)
    pending = []
    for migration in available_migrations():
        checksum = applied.get(migration.version)
        if checksum is None:
            pending.append(migration)
        elif checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} was changed after it was "
                "applied; restore the original file and add a new migration instead"
            )
    return pending


async def migrate(url: str) -> list[Migration]:
    """Apply pending migrations in one transaction; return those applied by this call."""
    conn = await connect(url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            await refuse_unfinished_restore(conn)
            await conn.execute(CREATE_LEDGER)
            pending = await pending_migrations(conn)
            await apply_migrations(conn, pending)
            return pending
    finally:
        await conn.close()


async def refuse_unfinished_restore(conn: asyncpg.Connection) -> None:
    """MigrationError when a `restore full` into this database did not finish (its marker is
    there): migrating half-loaded tables would make them look like a registry."""
    found = await unfinished.found(conn)
    if found is not None:
        raise MigrationError(f"this database holds {found.describe()}; it is not a registry yet: run the "
                             "same 'vaxvault restore full' again (it clears what was built first), or drop "
                             "and create the database")


async def apply_migrations(conn: asyncpg.Connection, migrations: list[Migration]) -> None:
    """Run `migrations` in order on `conn` and record each in the ledger (which must exist).

    The caller holds the transaction and the migration lock; raises MigrationError naming the
    migration that failed.
    """
    for migration in migrations:
        try:
            await conn.execute(migration.sql)
        except asyncpg.PostgresError as exc:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} failed: {exc}"
            ) from exc
        await conn.execute(
            "INSERT INTO vaxvault_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            migration.version, migration.name, migration.checksum,
        )


async def is_current(conn: asyncpg.Connection) -> bool:
    """True when every shipped migration is applied (the readiness check)."""
    applied = await applied_versions(conn)
    return all(m.version in applied for m in available_migrations())
