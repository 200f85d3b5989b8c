"""Logical-decoding capture: writers pay nothing; the change log is filled from the WAL by a drain.

On a server with wal_level=logical, `backup init` (capture mode "logical") creates a pgoutput slot
and a publication of the captured tables, sets REPLICA IDENTITY FULL on them (old rows of UPDATE
and DELETE, no extra WAL on INSERT) and drops their triggers. Every reader of the change log (the
backup run's cut, restore's history, find-loss) first DRAINS the slot into the same `changes`
table, so the cut, the segments and restore read what trigger capture would have written:
row images are rebuilt by the server as `to_json` of a record of the decoded columns and types,
the key from the captured primary key, `txid` is the writer's transaction id (xid8), positions
follow commit order, TRUNCATE is an `op = T` row, and `captured_at` is the commit time.

Consistency (FORMAT.md, "Logical capture"): a drain runs inside the reader's REPEATABLE READ
transaction, after its snapshot S. It decodes every transaction whose commit record precedes the
WAL insert position read after S (so every transaction visible in S) and inserts them in that
transaction, which therefore sees them. It also decodes some transactions S does not see; a cut
ships only changes whose txid S sees (`changelog.cut_segment(visible_at=...)`), so those go in
the next segment, as the no-gap/no-duplicate rule requires. The progress (end of the last
drained commit) is written in the same transaction, so a crash or a rollback (a dry run) leaves
the slot's changes to be drained again, and a replay skips what is already in the log. A lock
on the progress table, taken before the snapshot, makes drains one at a time.
"""

from __future__ import annotations

import asyncpg

from backup.capture.catalog import TableDef, quote_ident
from backup.capture.pairing import log_rows
from backup.capture.pgoutput import Decoder, Relation
from backup.errors import CaptureError

SCHEMA = "vaxvault_backup"
# Slots are the cluster's, so each database's is named by its OID (recorded in PROGRESS).
SLOT_PREFIX = "vaxvault_capture_"
PUBLICATION = "vaxvault_capture"
PROGRESS = f"{SCHEMA}.decoding"
MODES = ("trigger", "logical")

_PROGRESS_SETUP = f"""
-- One row when capture is logical: the slot, and the end of the last commit drained into the log.
CREATE TABLE IF NOT EXISTS {PROGRESS} (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    slot_name    text NOT NULL,
    drained_lsn  pg_lsn NOT NULL
);
REVOKE ALL ON {PROGRESS} FROM PUBLIC;
"""
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS vaxvault_drained (
    seq int, txid bigint, committed_at timestamptz, table_name text, op text, shape int,
    old text[], new text[]
) ON COMMIT DELETE ROWS
"""
_STAGING_COLUMNS = ("seq", "txid", "committed_at", "table_name", "op", "shape", "old", "new")
_PEEK = ("SELECT data FROM pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, NULL, "
         "'proto_version', '1', 'publication_names', $3)")
_BATCH = 5000


class SlotLost(CaptureError):
    """The replication slot is gone or lost WAL it needed: changes were lost, a full run is due."""


class Undecodable(CaptureError):
    """A change in the slot cannot be turned into a log row (every later drain would stop at it):
    a full run recreates the slot and starts a new chain."""


# The captured tables as the catalog has them now: primary key names by table OID (a key column
# renamed since install), and whether the key is DEFERRABLE (capture/pairing.py).
_CURRENT_KEYS = f"""
SELECT c.oid, c.relname, k.condeferrable,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum ORDER BY u.ord) AS names
FROM {SCHEMA}.captured t
JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.schema_name) || '.' || quote_ident(t.table_name))
JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = 'p'
"""


async def mode(conn: asyncpg.Connection) -> str:
    """'logical' when capture drains a slot, else 'trigger' (also when capture is not installed)."""
    if await conn.fetchval("SELECT to_regclass($1)", PROGRESS) is None:
        return "trigger"
    return "logical" if await conn.fetchval(f"SELECT count(*) FROM {PROGRESS}") else "trigger"


async def check_server(conn: asyncpg.Connection) -> None:
    """CaptureError unless the server can decode: wal_level=logical and a free slot."""
    level = await conn.fetchval("SELECT current_setting('wal_level')")
    if level != "logical":
        raise CaptureError(
            f"logical capture needs wal_level=logical; this server has wal_level={level}. Fix: "
            "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL, and run 'vaxvault backup "
            "init' again (or unset VAXVAULT_BACKUP_CAPTURE to keep trigger capture)")


async def install(conn: asyncpg.Connection, tables: list[TableDef]) -> list[str]:
    """Switch `tables` to logical capture inside the caller's transaction (trigger capture's schema
    already set up in it): drop their triggers, REPLICA IDENTITY FULL, publish them, record the
    slot. The slot itself is created by `create_slot` BEFORE this transaction (a slot cannot be
    created in a transaction that wrote). Returns warnings for the operator."""
    for table in tables:
        generated = await conn.fetchval(
            "SELECT string_agg(attname, ', ') FROM pg_attribute WHERE attrelid = $1::regclass "
            "AND attgenerated <> '' AND NOT attisdropped", table.qualified)
        if generated:
            raise CaptureError(
                f"table {table.name} has generated columns ({generated}), which logical decoding does not "
                "send; keep trigger capture for this database (unset VAXVAULT_BACKUP_CAPTURE)")
    await conn.execute(_PROGRESS_SETUP)
    for table in tables:
        for event in ("insert", "update", "delete"):
            await conn.execute(f"DROP TRIGGER IF EXISTS vaxvault_capture_{event} ON {table.qualified}")
        await conn.execute(f"DROP TRIGGER IF EXISTS vaxvault_capture_truncate ON {table.qualified}")
        await conn.execute(f"ALTER TABLE {table.qualified} REPLICA IDENTITY FULL")
    await conn.execute(f"ALTER PUBLICATION {quote_ident(PUBLICATION)} SET TABLE "
                       + ", ".join(t.qualified for t in tables))
    # Every transaction that committed before this point ran the triggers (the DROP TRIGGERs
    # above waited for their table locks, so no writer is half-way); every later one did not:
    # the drain starts after it. On a second init the recorded progress stays.
    await conn.execute(
        f"INSERT INTO {PROGRESS} (slot_name, drained_lsn) VALUES ($1, pg_current_wal_insert_lsn()) "
        "ON CONFLICT (singleton) DO NOTHING", await slot_name(conn))
    keep = await conn.fetchval("SELECT current_setting('max_slot_wal_keep_size')")
    if keep == "-1":
        return ["max_slot_wal_keep_size is -1: if backup runs stop, the capture slot keeps WAL without "
                "bound until the disk fills. Fix: ALTER SYSTEM SET max_slot_wal_keep_size = '20GB' (a few "
                "days of WAL); SELECT pg_reload_conf(); a run after the slot lost WAL asks for a full run"]
    return []


async def uninstall(conn: asyncpg.Connection, tables: list[TableDef], database_url: str) -> str:
    """Switch `tables` back to trigger capture inside the caller's transaction, which has just
    added their triggers: drain the slot (every change committed before the triggers), REPLICA
    IDENTITY DEFAULT, forget the slot. Returns its name for `drop_slot` after the commit. Raises
    SlotLost when the slot cannot give every change (a full run recreates it; then switch)."""
    slot = await slot_name(conn)
    await lock(conn)
    await drain(conn, database_url)
    for table in tables:
        await conn.execute(f"ALTER TABLE {table.qualified} REPLICA IDENTITY DEFAULT")
    await conn.execute(f"DELETE FROM {PROGRESS}")
    return slot


async def drop_slot(conn: asyncpg.Connection, slot: str) -> None:
    """Drop the capture slot (it holds WAL while it exists) and the publication."""
    await conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                       "WHERE slot_name = $1", slot)
    await conn.execute(f"DROP PUBLICATION IF EXISTS {quote_ident(PUBLICATION)}")


async def create_publication(conn: asyncpg.Connection, tables: list[TableDef]) -> None:
    """Create the publication the slot decodes through, BEFORE the slot: pgoutput looks it up as
    the catalog was at each decoded change, and fails on changes from before it existed."""
    if not await conn.fetchval("SELECT count(*) FROM pg_publication WHERE pubname = $1", PUBLICATION):
        await conn.execute(f"CREATE PUBLICATION {quote_ident(PUBLICATION)} FOR TABLE "
                           + ", ".join(t.qualified for t in tables)
                           + " WITH (publish_via_partition_root = true)")


async def slot_name(conn: asyncpg.Connection) -> str:
    """The recorded slot of this database, or the name a new one gets."""
    if await conn.fetchval("SELECT to_regclass($1)", PROGRESS) is not None:
        recorded = await conn.fetchval(f"SELECT slot_name FROM {PROGRESS}")
        if recorded:
            return str(recorded)
    oid = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")
    return f"{SLOT_PREFIX}{oid}"


async def create_slot(conn: asyncpg.Connection, recreate: bool = False) -> None:
    """Create the capture slot unless it exists and is usable (or `recreate`: drop it first);
    outside any transaction."""
    slot = await slot_name(conn)
    row = await conn.fetchrow("SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1", slot)
    if row is not None and row["wal_status"] != "lost" and not recreate:
        return
    try:
        if row is not None:
            await conn.execute("SELECT pg_drop_replication_slot($1)", slot)
        await conn.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot)
    except asyncpg.PostgresError as exc:
        raise CaptureError(f"cannot create the capture slot {slot}: {exc}") from exc


async def slot_problem(conn: asyncpg.Connection) -> str | None:
    """Why the slot can no longer give every change since the last drain, or None."""
    row = await conn.fetchrow(
        "SELECT s.wal_status, s.confirmed_flush_lsn, d.drained_lsn, s.slot_name AS slot, "
        "d.slot_name AS recorded FROM "
        f"{PROGRESS} d LEFT JOIN pg_replication_slots s ON s.slot_name = d.slot_name")
    if row is None:
        return None
    if row["wal_status"] is None:
        return (f"the capture slot {row['recorded']} does not exist (dropped, or this server is a "
                "promoted standby: "
                "PostgreSQL 15 keeps slots on the primary only)")
    if row["wal_status"] == "lost":
        return f"the capture slot {row['slot']} lost WAL it needed (max_slot_wal_keep_size)"
    if row["confirmed_flush_lsn"] > row["drained_lsn"]:
        return f"the capture slot {row['slot']} was advanced past the changes drained into the log"
    return None


async def safe_wal_size(conn: asyncpg.Connection) -> int | None:
    """Bytes of WAL the server may still write before the slot loses some (None: no limit)."""
    value = await conn.fetchval(
        f"SELECT s.safe_wal_size FROM {PROGRESS} d JOIN pg_replication_slots s ON s.slot_name = d.slot_name")
    return None if value is None else int(value)


async def restart(conn: asyncpg.Connection, recreate: bool = False) -> None:
    """Recreate a lost slot (or any, `recreate`: one holding a change no drain can decode) and
    drain from where it starts (a full run after a loss: the changes in between are in its
    snapshot, and it starts a new chain)."""
    await create_slot(conn, recreate)
    await conn.execute(
        f"UPDATE {PROGRESS} SET drained_lsn = s.confirmed_flush_lsn FROM pg_replication_slots s "
        "WHERE s.slot_name = $1", await slot_name(conn))


def lost_message(problem: str) -> str:
    return (f"{problem}: changes since the last backup may be missing from the change log, so an "
            "incremental cannot be trusted; run 'vaxvault backup run --full' (it recreates the slot "
            "and starts a new chain)")


async def lock(conn: asyncpg.Connection) -> None:
    """Take the drain lock: the FIRST statement of the caller's REPEATABLE READ transaction, before
    its snapshot (LOCK takes none), so the snapshot sees every drain that committed before."""
    await conn.execute(f"LOCK TABLE {PROGRESS} IN SHARE ROW EXCLUSIVE MODE")


async def drain(conn: asyncpg.Connection, database_url: str) -> int:
    """Drain the slot into the change log inside the caller's transaction (after `lock`); return
    how many changes were added. Raises SlotLost when the slot cannot give them."""
    problem = await slot_problem(conn)
    if problem:
        raise SlotLost(lost_message(problem))
    slot, drained = await conn.fetchrow(f"SELECT slot_name, drained_lsn FROM {PROGRESS}")
    confirmed = await conn.fetchval(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1", slot)
    if drained > confirmed:
        # What earlier drains committed is no longer needed from the WAL.
        await conn.execute("SELECT pg_replication_slot_advance($1, $2::pg_lsn)", slot, drained)
    upto = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
    if await conn.fetchval("SELECT pg_current_wal_flush_lsn()") < upto:
        await _flush(database_url)
    await conn.execute(_STAGING)
    reference = int(await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text"))
    keys = _Keys(dict(await conn.fetch(f"SELECT table_name, primary_key FROM {SCHEMA}.captured")),
                 await conn.fetch(_CURRENT_KEYS))
    shapes: Shapes = {}
    decoder = Decoder()
    count = 0
    last_end = drained
    cursor = await conn.cursor(_PEEK, slot, upto, PUBLICATION)
    while rows := await cursor.fetch(_BATCH):
        records: list[tuple[object, ...]] = []
        for row in rows:
            changes = [c for c in decoder.feed(row["data"])
                       # drained before (a replay), or no longer captured
                       if c.end_lsn > drained and c.relation.name in keys.installed]
            if not changes:
                continue
            last_end = max(last_end, changes[-1].end_lsn)
            for change, op, old, new in log_rows(changes, keys.positions, keys.deferrable):
                relation = change.relation
                shape = shapes.setdefault(
                    (relation.name, relation.columns, relation.types, keys.names(relation)), len(shapes))
                records.append((count, _xid8(change.xid, reference), change.committed_at,
                                relation.name, op, shape, old, new))
                count += 1
        if records:
            await conn.copy_records_to_table("vaxvault_drained", records=records, columns=_STAGING_COLUMNS)
    if count:
        # Undecodable only for what a decoded value or type can cause (a value that no longer fits,
        # a type gone or no longer castable); not the rest of class 42 (a syntax error here is a
        # bug of this module: calling it undecodable would have a full run recreate the slot,
        # losing its changes), nor a missing privilege (this role's problem, not the slot's).
        try:
            await conn.execute(await _insert_sql(conn, shapes))
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, asyncpg.UndefinedObjectError,
                asyncpg.CannotCoerceError, asyncpg.DatatypeMismatchError) as exc:
            raise Undecodable(
                f"the capture slot holds changes that cannot be rebuilt into the change log ({exc}): "
                f"{_fix()}") from exc
        await conn.execute("TRUNCATE vaxvault_drained")
    if last_end > drained:
        await conn.execute(f"UPDATE {PROGRESS} SET drained_lsn = $1::pg_lsn", last_end)
        # The WAL after this point names the key as the catalog does now: so only a key column
        # renamed twice between two drains leaves a change no key fits.
        await conn.execute(
            f"UPDATE {SCHEMA}.captured recorded SET primary_key = k.names FROM ({_CURRENT_KEYS}) k "
            "WHERE k.relname = recorded.table_name AND recorded.primary_key IS DISTINCT FROM k.names")
    return count


Shapes = dict[tuple[str, tuple[str, ...], tuple[int, ...], tuple[str, ...]], int]


class _Keys:
    """Where each decoded relation's primary key is. The names recorded at install, else the
    key's names now (a key column renamed after the change was made: the WAL describes the table
    as it was then). pgoutput's key flags cannot say: with REPLICA IDENTITY FULL it flags every
    column."""

    def __init__(self, installed: dict[str, list[str]], current: list[asyncpg.Record]) -> None:
        self.installed = installed
        self.current = {int(r["oid"]): list(r["names"]) for r in current}
        self.deferrable = frozenset(r["relname"] for r in current if r["condeferrable"])
        # By identity (a Relation is re-described after DDL; hashing its tuples per change costs).
        self.resolved: dict[int, tuple[Relation, tuple[str, ...]]] = {}

    def names(self, relation: Relation) -> tuple[str, ...]:
        """The key's column names as `relation` names them; Undecodable when neither the installed
        nor the current key is among its columns."""
        cached = self.resolved.get(id(relation))
        if cached is not None and cached[0] is relation:
            return cached[1]
        for key in (self.installed[relation.name], self.current.get(relation.oid) or []):
            if key and all(c in relation.columns for c in key):
                self.resolved[id(relation)] = (relation, tuple(key))
                return tuple(key)
        raise Undecodable(
            f"a change of table {relation.name} cannot be keyed: the WAL describes its columns as "
            f"({', '.join(relation.columns)}), which hold neither the primary key recorded at install "
            f"({', '.join(self.installed[relation.name])}) nor today's "
            f"({', '.join(self.current.get(relation.oid) or ['none'])}) (a key column renamed twice, "
            f"or the key changed, since the last drain?); {_fix()}")

    def positions(self, relation: Relation) -> list[int]:
        return [relation.columns.index(c) for c in self.names(relation)]


def _fix() -> str:
    return ("every later drain would stop at it, so incrementals cannot continue: run 'vaxvault backup run "
            "--full' (it recreates the capture slot, skipping these changes, and starts a new chain)")


def _xid8(xid: int, reference: int) -> int:
    """The full transaction id of a 32-bit one: the one nearest `reference` (a full id of now:
    the snapshot's xmax). Nearest, not "at most": the drain also decodes transactions that got
    their id after the snapshot was taken (they commit before the drain's end), and any live id
    is within 2^31 of any other (PostgreSQL's wraparound guard)."""
    full = (reference & ~0xFFFF_FFFF) | xid
    if full - reference > 1 << 31:
        return full - (1 << 32)
    if reference - full > 1 << 31:
        return full + (1 << 32)
    return full


async def _flush(database_url: str) -> None:
    """Make the WAL up to now durable, so decoding reaches every transaction this snapshot sees:
    one committed with synchronous_commit off is visible before its commit record is flushed, and
    decoding reads flushed WAL only. A transactional message (which the publication's decoding
    skips) committed with synchronous_commit on flushes everything before it."""
    try:
        side = await asyncpg.connect(database_url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise CaptureError(f"cannot connect to PostgreSQL to flush the WAL before draining: {exc}") from exc
    try:
        async with side.transaction():
            await side.execute("SET LOCAL synchronous_commit = on")
            await side.execute("SELECT pg_logical_emit_message(true, 'vaxvault', 'flush')")
    finally:
        await side.close()


async def _insert_sql(conn: asyncpg.Connection, shapes: Shapes) -> str:
    """INSERT ... SELECT moving the staged changes into the log in order, each image rebuilt as
    to_json of a record with the decoded columns, cast from their text to their decoded types
    (so an image made before a migration keeps the columns it had). A domain is cast to its base
    type (to_json gives the same; a CHECK tightened since must not stop the drain). A type dropped
    since (format_type says ???) is read as text: its values are its own output, and any column
    of it is gone from the table or retyped (restore populates a column from the text)."""
    oids = sorted({oid for _, _, types, _ in shapes for oid in types})
    names = {oid: "text" if name in (None, "???") else name
             for oid, name in await conn.fetch(_TYPE_NAMES, oids)}
    key_cases: list[str] = []
    image_cases: dict[str, list[str]] = {"old": [], "new": []}
    for (_, columns, types, key), shape in shapes.items():
        typed = [f"@[{i}]::{names[oid]} AS {quote_ident(c)}"
                 for i, (c, oid) in enumerate(zip(columns, types, strict=True), 1)]
        for side in ("old", "new"):
            image_cases[side].append(
                f"WHEN {shape} THEN (SELECT pg_catalog.to_json(r.*) FROM (SELECT "
                + ", ".join(t.replace("@", f"s.{side}", 1) for t in typed) + ") r)")
        pairs = ", ".join(f"{_literal(c)}, r.{quote_ident(c)}" for c in key)
        key_typed = [typed[columns.index(c)] for c in key]
        key_cases.append(
            f"WHEN {shape} THEN (SELECT pg_catalog.json_build_object({pairs}) FROM (SELECT "
            + ", ".join(t.replace("@", "s.k", 1) for t in key_typed) + ") r)")
    return f"""
INSERT INTO {SCHEMA}.changes (txid, captured_at, table_name, op, key, old, new)
SELECT s.txid::text::pg_catalog.xid8, s.committed_at, s.table_name, s.op::"char",
       CASE WHEN s.op = 'T' THEN NULL ELSE CASE s.shape {' '.join(key_cases)} END END,
       CASE WHEN s.old IS NULL THEN NULL ELSE CASE s.shape {' '.join(image_cases['old'])} END END,
       CASE WHEN s.new IS NULL THEN NULL ELSE CASE s.shape {' '.join(image_cases['new'])} END END
FROM (SELECT *, CASE WHEN op = 'D' THEN old ELSE new END AS k FROM pg_temp.vaxvault_drained) s
ORDER BY s.seq
"""


# Each type's name, a domain's that of its base type (domains over domains: the deepest).
_TYPE_NAMES = """
WITH RECURSIVE t(oid, base, depth) AS (
    SELECT o, o, 0 FROM unnest($1::oid[]) o
    UNION ALL
    SELECT t.oid, y.typbasetype, t.depth + 1 FROM t JOIN pg_type y ON y.oid = t.base AND y.typtype = 'd')
SELECT DISTINCT ON (oid) oid, format_type(base, NULL) FROM t ORDER BY oid, depth DESC
"""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
