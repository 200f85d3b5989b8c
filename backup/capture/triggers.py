"""Change capture: the vaxvault_backup schema, its change table, triggers and the watermark.

Idempotent: running install again adds tables, refreshes functions and keeps the watermark.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from backup.capture import logical
from backup.capture.catalog import TableDef, describe_tables, quote_ident
from backup.errors import CaptureError

SCHEMA = "vaxvault_backup"


def commit_time_sql(alias: str) -> str:
    """SQL for when a captured change committed: the commit timestamp when the server tracks
    it, else the capture clock, a lower bound (FORMAT.md). Calling pg_xact_commit_timestamp
    without tracking is an error, hence the guard."""
    return (f"coalesce(CASE WHEN current_setting('track_commit_timestamp')::boolean "
            f"THEN pg_xact_commit_timestamp({alias}.txid::xid) END, {alias}.captured_at)")


# Never captured by default: append-only history (in full snapshots only) and bookkeeping.
NOT_CAPTURED = ("audit_log", "vaxvault_migrations")
TRIGGER = "vaxvault_capture"
TRUNCATE_TRIGGER = "vaxvault_capture_truncate"
# One statement-level trigger per event: a trigger with transition tables takes one event.
_TRIGGER_EVENTS = (
    ("INSERT", "NEW TABLE AS new_rows"),
    ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("DELETE", "OLD TABLE AS old_rows"),
)

_SETUP = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.changes (
    position     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    captured_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    table_name   text NOT NULL,
    op           "char" NOT NULL,
    key          json,
    old          json,
    new          json
);
-- Row images are json (text as to_json wrote it), not jsonb: capture writes them without
-- building a jsonb value, and the cut sends them without rendering one back to text, which
-- was half of the server's CPU shipping a 266,561-row segment (2.0 s -> 1.1 s for its COPY on
-- the 1M bench database). Logs made by earlier versions are converted once, here.
DO $convert$ BEGIN
    IF (SELECT atttypid FROM pg_attribute WHERE attrelid = '{SCHEMA}.changes'::regclass
        AND attname = 'new') = 'jsonb'::regtype THEN
        ALTER TABLE {SCHEMA}.changes ALTER COLUMN key TYPE json USING key::json,
            ALTER COLUMN old TYPE json USING old::json, ALTER COLUMN new TYPE json USING new::json;
    END IF;
END $convert$;
-- No index on txid: every insert paid for one (~5 us of server CPU and ~70 WAL bytes per
-- captured row, bench/capture_cost.py) and the readers do not need it: the cut walks the
-- primary key, and its summary, the trim and restore's live-log reads take most of the log
-- (it is trimmed after every run), which a sequential scan does as well. Logs of earlier
-- versions lose it here.
DROP INDEX IF EXISTS {SCHEMA}.changes_txid_idx;
CREATE TABLE IF NOT EXISTS {SCHEMA}.captured (
    table_name   text PRIMARY KEY,
    schema_name  text NOT NULL,
    primary_key  text[] NOT NULL
);
-- One row: the position (pg_snapshot) up to which changes are cut into segments.
CREATE TABLE IF NOT EXISTS {SCHEMA}.state (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    watermark    text NOT NULL,
    segment_id   text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- trimmed: the position up to which the live log was trimmed (restore's "the log starts here");
-- NULL on an install older than the column: then the watermark is the safe guess.
ALTER TABLE {SCHEMA}.state ADD COLUMN IF NOT EXISTS trimmed text;
-- capture_version: CAPTURE_VERSION of the vaxvault that installed the functions (NULL: before it).
ALTER TABLE {SCHEMA}.state ADD COLUMN IF NOT EXISTS capture_version int;
INSERT INTO {SCHEMA}.state (watermark, trimmed)
VALUES (pg_current_snapshot()::text, pg_current_snapshot()::text) ON CONFLICT DO NOTHING;

-- The generic function of earlier versions (dynamic SQL planned on every call); the per-table
-- functions below replace it.
DROP FUNCTION IF EXISTS {SCHEMA}.capture_rows() CASCADE;
DROP FUNCTION IF EXISTS {SCHEMA}.capture_row() CASCADE;

CREATE OR REPLACE FUNCTION {SCHEMA}.capture_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO {SCHEMA}.changes (table_name, op) VALUES (TG_TABLE_NAME, 'T');
    RETURN NULL;
END $$;
REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM PUBLIC;
"""


# What the installed functions and triggers are: raise it whenever capture_function_sql or _SETUP
# change what an install holds, so `backup run` refreshes older installs (refresh_if_stale).
# 1 (no stamp): capture functions taking the row as a bare `n`, ambiguous in a table with a column
# named n or o (every write to it failed); 2: `n.*`.
CAPTURE_VERSION = 2

# Equality as pg_catalog defines it, whatever operators the writer's search_path puts first.
_EQUALS = "OPERATOR(pg_catalog.=)"


def capture_function(table: TableDef) -> str:
    """The name of `table`'s capture function in SCHEMA (quoted)."""
    return quote_ident(f"capture__{table.name}")


def capture_function_sql(table: TableDef) -> str:
    """CREATE OR REPLACE of `table`'s capture function: static statements for its own columns.

    Static SQL is planned once per session and reused; the generic function of earlier versions
    built its statement with format() and EXECUTE on every call, which cost more than the
    captured INSERT itself (bench/writes.py). Statement-level with transition tables: a bulk
    write (a restore, a migration, an incident) is captured by one INSERT ... SELECT instead of
    one trigger call per row. SECURITY DEFINER: writers (the API role) may not touch the change
    log directly; the pinned search_path keeps a caller's schemas out of the definer's queries
    (the project's rule for every SECURITY DEFINER function, tests/privacy/test_rls_parity.py).
    Every function and operator in the body is also qualified with pg_catalog, and every table
    is qualified or a transition table (which the parser resolves before any schema), so the
    body would mean the same under any search_path; the pinned one costs ~9-12 us of server CPU
    per captured statement (bench/capture_cost.py), about a fifth of capture's cost on a
    single-row INSERT: dropping it is a decision for the owners of that rule.
    """
    name = _literal(table.name)
    pk = table.primary_key

    def key(alias: str) -> str:
        return "pg_catalog.json_build_object(" + ", ".join(
            f"{_literal(c)}, {alias}.{quote_ident(c)}" for c in pk) + ")"

    first = quote_ident(pk[0])
    update_key = "pg_catalog.json_build_object(" + ", ".join(
        f"{_literal(c)}, coalesce(n.{quote_ident(c)}, o.{quote_ident(c)})" for c in pk) + ")"
    on_keys = " AND ".join(f"o.{quote_ident(c)} {_EQUALS} n.{quote_ident(c)}" for c in pk)
    target = f"{SCHEMA}.changes (table_name, op, key, old, new)"
    # Whole rows as `n.*` / `o.*`: a bare `n` is ambiguous in a table with a column named n.
    return f"""
CREATE OR REPLACE FUNCTION {SCHEMA}.{capture_function(table)}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP {_EQUALS} 'INSERT' THEN
        INSERT INTO {target}
        SELECT {name}, 'I', {key("n")}, NULL, pg_catalog.to_json(n.*) FROM new_rows n;
    ELSIF TG_OP {_EQUALS} 'DELETE' THEN
        INSERT INTO {target}
        SELECT {name}, 'D', {key("o")}, pg_catalog.to_json(o.*), NULL FROM old_rows o;
    ELSE
        -- Rows are paired by key; an UPDATE that changes a key reads as a delete and an insert.
        INSERT INTO {target}
        SELECT {name}, CASE WHEN o.{first} IS NULL THEN 'I' WHEN n.{first} IS NULL THEN 'D' ELSE 'U' END,
               {update_key},
               CASE WHEN o.{first} IS NULL THEN NULL ELSE pg_catalog.to_json(o.*) END,
               CASE WHEN n.{first} IS NULL THEN NULL ELSE pg_catalog.to_json(n.*) END
        FROM old_rows o FULL JOIN new_rows n ON {on_keys};
    END IF;
    RETURN NULL;
END $$;
"""


COMMIT_ORDER_WARNING = (
    "track_commit_timestamp is off: changes will be dated by the capture clock, not by their commit, "
    "so a transaction that begins before a restore's T and commits after it would count as before "
    "T (restores name such windows in their warnings). Fix: ALTER SYSTEM SET track_commit_timestamp "
    "= on; then restart PostgreSQL (the setting takes effect at server start)")


@dataclass(frozen=True)
class CaptureInstall:
    """commit_timestamps: whether the server dates changes by commit (see COMMIT_ORDER_WARNING)."""

    tables: tuple[str, ...]
    watermark: str
    commit_timestamps: bool = True
    mode: str = "trigger"
    notes: tuple[str, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.notes + (() if self.commit_timestamps else (COMMIT_ORDER_WARNING,))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def install(conn: asyncpg.Connection, tables: tuple[str, ...] | None = None,
                  schema: str = "public", mode: str | None = None,
                  database_url: str | None = None) -> CaptureInstall:
    """Install or refresh capture on `tables` (default: every table with a primary key but
    audit_log and vaxvault_migrations). `mode`: 'trigger' or 'logical' (capture/logical.py);
    None keeps the installed one (trigger on a new install). A switch from logical to trigger
    drains the slot (through `database_url`) in the transaction that adds the triggers, then
    drops it. Raises CaptureError for an unknown table, for logical capture on a server without
    wal_level=logical, and for a switch back whose slot lost changes (SlotLost: run a full backup
    first)."""
    chosen: list[TableDef] = await describe_tables(conn, schema, tables)
    if tables is None:
        chosen = [t for t in chosen if t.name not in NOT_CAPTURED]
    installed = await logical.mode(conn)
    mode = mode or installed
    if mode not in logical.MODES:
        raise CaptureError(f"capture mode {mode!r} is not one of {', '.join(logical.MODES)}")
    switching_back = installed == "logical" and mode == "trigger"
    if switching_back and database_url is None:
        raise CaptureError("switching from logical to trigger capture drains the slot: pass the database URL")
    if switching_back:
        # The switch drops the slot: a captured table left out would be captured by neither.
        captured = {r["table_name"] for r in await conn.fetch(f"SELECT table_name FROM {SCHEMA}.captured")}
        left_out = sorted(captured - {t.name for t in chosen})
        if left_out:
            raise CaptureError(f"switching back to trigger capture must take every logically captured table; "
                               f"{', '.join(left_out)} would lose capture: run 'vaxvault backup init' "
                               "without --tables (or name them too)")
    warnings: list[str] = []
    slot = None
    if mode == "logical":
        await logical.check_server(conn)
        await logical.create_publication(conn, chosen)
        await logical.create_slot(conn)
    try:
        async with conn.transaction():
            await conn.execute(_SETUP)
            for table in chosen if mode == "logical" else ():
                await _record(conn, table)
            if mode == "logical":
                warnings = await logical.install(conn, chosen)
            for table in chosen if mode == "trigger" else ():
                await conn.execute(capture_function_sql(table))
                for event, transition in _TRIGGER_EVENTS:
                    await conn.execute(
                        f"CREATE OR REPLACE TRIGGER {TRIGGER}_{event.lower()} AFTER {event} "
                        f"ON {table.qualified} REFERENCING {transition} FOR EACH STATEMENT "
                        f"EXECUTE FUNCTION {SCHEMA}.{capture_function(table)}()")
                await conn.execute(
                    f"CREATE OR REPLACE TRIGGER {TRUNCATE_TRIGGER} BEFORE TRUNCATE "
                    f"ON {table.qualified} FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.capture_truncate()")
                await _record(conn, table)
            if switching_back:
                # After the triggers: every writer of these tables has committed (CREATE TRIGGER
                # waited for it, and it is in the WAL the drain reads) or will run them.
                slot = await logical.uninstall(conn, chosen, database_url or "")
            if await _covers_every_captured_table(conn, chosen):
                await conn.execute(_STAMP)
            watermark = await conn.fetchval(f"SELECT watermark FROM {SCHEMA}.state")
            tracked = await conn.fetchval("SELECT current_setting('track_commit_timestamp')::boolean")
        if slot is not None:
            await logical.drop_slot(conn, slot)
    except asyncpg.PostgresError as exc:
        raise CaptureError(f"cannot install change capture: {exc}") from exc
    return CaptureInstall(tuple(t.name for t in chosen), watermark, bool(tracked), mode, tuple(warnings))


# The install is this version's only when every captured table was (re)installed by it.
_STAMP = f"UPDATE {SCHEMA}.state SET capture_version = {CAPTURE_VERSION}"


async def _covers_every_captured_table(conn: asyncpg.Connection, chosen: list[TableDef]) -> bool:
    """Whether `chosen` holds every captured table that still exists: an install of some tables
    (`backup init --tables`) after an upgrade must not mark the others' older functions current."""
    captured = await conn.fetch(f"SELECT schema_name, table_name FROM {SCHEMA}.captured "
                                "WHERE to_regclass(format('%I.%I', schema_name, table_name)) IS NOT NULL")
    return {(r["schema_name"], r["table_name"]) for r in captured} <= {(t.schema, t.name) for t in chosen}


async def _record(conn: asyncpg.Connection, table: TableDef) -> None:
    await conn.execute(
        f"INSERT INTO {SCHEMA}.captured VALUES ($1, $2, $3) ON CONFLICT (table_name) "
        "DO UPDATE SET schema_name = excluded.schema_name, primary_key = excluded.primary_key",
        table.name, table.schema, list(table.primary_key))


async def captured_tables(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(schema, table) of every captured table; CaptureError when capture is not installed."""
    installed = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{SCHEMA}.captured")
    if not installed:
        raise CaptureError("change capture is not installed in this database; run 'vaxvault backup init'")
    rows = await conn.fetch(f"SELECT schema_name, table_name FROM {SCHEMA}.captured ORDER BY table_name")
    return [(r["schema_name"], r["table_name"]) for r in rows]




async def refresh_if_stale(conn: asyncpg.Connection) -> str | None:
    """Bring capture installed by an older vaxvault (CAPTURE_VERSION) up to this one, on the
    tables it captures, as `backup init` would: a scheduled run after an upgrade must neither
    fail for want of an init nor go on with functions this version fixed. Returns what was done
    (None: nothing to do, or capture not installed); raises CaptureError naming the fix when this
    role may not replace them."""
    stamped = await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL AND EXISTS (SELECT FROM pg_attribute WHERE attrelid = "
        "to_regclass($1) AND attname = 'capture_version' AND NOT attisdropped)", f"{SCHEMA}.state")
    if await conn.fetchval("SELECT to_regclass($1)", f"{SCHEMA}.captured") is None:
        return None
    version = await conn.fetchval(f"SELECT capture_version FROM {SCHEMA}.state") if stamped else None
    if version is not None and version >= CAPTURE_VERSION:
        return None
    before = version or 1
    refreshed: list[str] = []
    try:
        by_schema: dict[str, list[str]] = {}
        for schema, table in await captured_tables(conn):
            by_schema.setdefault(schema, []).append(table)
        for schema, names in by_schema.items():
            existing = {t.name for t in await describe_tables(conn, schema)}
            present = tuple(n for n in names if n in existing)  # a table dropped since stays dropped
            if present:
                refreshed += (await install(conn, present, schema=schema)).tables
        await conn.execute(_STAMP)  # every schema's tables now, which no one install saw whole
    except CaptureError as exc:
        raise CaptureError(
            f"change capture was installed by an older vaxvault (capture version {before}; this one "
            f"installs {CAPTURE_VERSION}) and this role cannot refresh it ({exc}); run 'vaxvault backup "
            "init' as the owner of the captured tables, then run the backup again") from exc
    return (f"change capture refreshed from version {before} to {CAPTURE_VERSION} on {len(refreshed)} "
            "table(s) (as 'vaxvault backup init' would)")
