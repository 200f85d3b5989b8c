"""Disaster recovery: an empty database becomes a serving vaxvault registry as at T.

The schema is built by this vaxvault's own migrations, never from SQL stored in the repository:
whatever an attacker or a fault could put in the repository can at worst be wrong data, never
code run as the database owner. The migrations are applied up to the level the snapshot was taken
at (its copy of the migration ledger says which), the data is loaded into that schema as at T
(backup.restore.full, on several connections at once), the newer migrations then run on the
restored rows exactly as they would have on the lost database, and change capture is installed on
the result with an empty log. The migration ledger comes back in the restore's last transaction:
until then the API is not ready on the target, and `db migrate` waits (the restore holds the
migration lock) or, after a crash, refuses the unfinished target. A failure leaves the target as
it was; a crash leaves it marked unfinished, and the next `restore full` clears it first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from api.db.connect import connect
from api.db.migrate import (
    CREATE_LEDGER,
    MIGRATION_LOCK_KEY,
    Migration,
    apply_migrations,
    available_migrations,
)
from api.errors import MigrationError
from backup.capture.triggers import install
from backup.errors import FormatError
from backup.restore.errors import RestoreError, RestorePlanError
from backup.restore.full import FullPlan, FullRestoreReport, restore_into, snapshot_rows
from backup.storage.codec import Key
from backup.storage.repository import Repository

LEDGER = "vaxvault_migrations"
API_ROLE = "vaxvault_api"
# Connections a restore loads on by default: as many as `pg_restore -j2`, the peer it is measured
# against; more pay only on a server with more cores (`restore full --jobs`).
CONNECTIONS = 2
_ROLE_EXISTS = "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)"


@dataclass(frozen=True)
class MigrationSplit:
    """The code's migrations, split by whether the snapshot's database had applied them."""

    at_snapshot: tuple[Migration, ...]
    after: tuple[Migration, ...]


@dataclass(frozen=True)
class RegistryRestore:
    plan: FullPlan
    load: FullRestoreReport
    migrations_at_snapshot: int
    migrations_after: tuple[str, ...]     # applied on the restored rows, e.g. '0030_name'
    role_created: bool                    # the server lacked the API role and the restore made it
    captured: tuple[str, ...]             # tables whose changes are captured from now on
    audit_id: int


def split_migrations(code: list[Migration], ledger: dict[int, str], snapshot_id: str) -> MigrationSplit:
    """Which of the code's migrations build the snapshot's schema and which come after (pure).

    Raises RestorePlanError when the snapshot's database had applied a migration this code does
    not ship or ships with other contents: its schema cannot be rebuilt from this code.
    """
    shipped = {m.version: m for m in code}
    unknown = sorted(v for v in ledger if v not in shipped)
    if unknown:
        raise RestorePlanError(
            f"snapshot {snapshot_id} was taken at migration {max(ledger):04d}, and this vaxvault does not "
            f"have migration(s) {', '.join(f'{v:04d}' for v in unknown)}; restore with the vaxvault "
            "version that wrote it (or newer)")
    edited = sorted(v for v, checksum in ledger.items() if shipped[v].checksum != checksum)
    if edited:
        raise RestorePlanError(
            f"migration(s) {', '.join(f'{v:04d}_{shipped[v].name}' for v in edited)} differ from what "
            f"snapshot {snapshot_id}'s database applied; restore with the vaxvault version that wrote it")
    return MigrationSplit(tuple(m for m in code if m.version in ledger),
                          tuple(m for m in code if m.version not in ledger))


def snapshot_ledger(repo: Repository, key: Key | None, plan: FullPlan) -> dict[int, str]:
    """version -> checksum from the snapshot's copy of the migration ledger.

    RestorePlanError when the snapshot has no ledger (it is not of a vaxvault registry).
    """
    snapshot = plan.history.snapshot
    try:
        rows = snapshot_rows(repo, key, snapshot, LEDGER)
    except FormatError as exc:
        raise RestorePlanError(f"snapshot {snapshot.id} has no {LEDGER} table, so it is not of a vaxvault "
                               "registry; 'restore full' rebuilds registries only") from exc
    try:
        return {int(row["version"] or ""): row["checksum"] or "" for row in rows}
    except (KeyError, ValueError) as exc:
        raise RestorePlanError(f"snapshot {snapshot.id} holds an unreadable {LEDGER} table: {exc}") from exc


async def restore_registry(target_url: str, repo: Repository, key: Key | None, plan: FullPlan,
                           actor: str, connections: int = CONNECTIONS) -> RegistryRestore:
    """Make the empty database at `target_url` the registry as at plan.as_of, loading on
    `connections` connections at once.

    Raises RestorePlanError / RestoreError (backup's words: target not empty, schema mismatch,
    counts, another restore running), MigrationError and DatabaseError; the target is left as it
    was in every case (see backup.restore.full for a crash of the server or of this process).
    """
    if connections < 1:
        raise RestoreError(f"a restore needs at least one connection, not {connections}")
    ledger = snapshot_ledger(repo, key, plan)
    split = split_migrations(available_migrations(), ledger, plan.history.snapshot.id)
    opened: list[asyncpg.Connection] = []
    try:
        for _ in range(connections):
            opened.append(await connect(target_url))
        main = opened[0]
        # Held for the whole restore: `db migrate` on the target waits for it, and a second
        # restore into the same database is refused rather than interleaved.
        if not await main.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY):
            raise RestoreError("another 'restore full' or 'db migrate' is running on the target database; "
                               "wait for it to finish, then run this again")
        role_existed = await main.fetchval(_ROLE_EXISTS, API_ROLE)

        async def build_schema(conn: asyncpg.Connection) -> None:
            await conn.execute(CREATE_LEDGER)
            await apply_migrations(conn, list(split.at_snapshot))
            # The ledger comes back last (held back): while it is empty, nothing calls this a registry.
            await conn.execute(f"DELETE FROM {LEDGER}")

        async def complete(conn: asyncpg.Connection, load: FullRestoreReport) -> tuple[tuple[str, ...], int]:
            await apply_migrations(conn, list(split.after))
            capture = await install(conn)
            audit_id = await _audit(conn, plan, load, actor)
            if not await conn.fetchval(_ROLE_EXISTS, API_ROLE):
                raise MigrationError(f"the migrations did not create role {API_ROLE}; the API could not run")
            return capture.tables, audit_id

        load, (captured, audit_id) = await restore_into(opened, repo, key, plan, build_schema=build_schema,
                                                        complete=complete, held_back=frozenset({LEDGER}))
    finally:
        for conn in opened:
            await conn.close()
    return RegistryRestore(plan, load, len(split.at_snapshot),
                           tuple(f"{m.version:04d}_{m.name}" for m in split.after),
                           role_created=not role_existed, captured=captured, audit_id=audit_id)


async def _audit(conn: asyncpg.Connection, plan: FullPlan, load: FullRestoreReport, actor: str) -> int:
    """The restore's own entry in the restored audit log (history kept, this event added)."""
    detail = {"as_of": plan.as_of.isoformat(), "snapshot": load.snapshot_id, "segments": load.segments,
              "history_reaches": plan.reach.reaches.isoformat(),
              "rows_at_t": {t.table: t.rows_at_t for t in load.tables}}
    audit_id: int = await conn.fetchval(
        "INSERT INTO audit_log (actor_sub, actor_role, action, operation, detail) "
        "VALUES ($1, 'admin', 'restore', 'restore full', $2::jsonb) RETURNING id",
        actor, json.dumps(detail))
    return audit_id


def age(reached: datetime, now: datetime) -> str:
    """How long before `now` the history ends, in words an operator reads at a glance."""
    seconds = max(0, int((now - reached).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"
