"""Change capture: the vaxvault_backup schema, its change table, triggers and the watermark.

Idempotent: running install again adds tables, refreshes functions and keeps the watermark.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from backup.capture.catalog import TableDef, describe_tables
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
    key          jsonb,
    old          jsonb,
    new          jsonb
);
CREATE INDEX IF NOT EXISTS changes_txid_idx ON {SCHEMA}.changes (txid);
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
INSERT INTO {SCHEMA}.state (watermark, trimmed)
VALUES (pg_current_snapshot()::text, pg_current_snapshot()::text) ON CONFLICT DO NOTHING;

-- SECURITY DEFINER: writers (the API role) may not touch the change log directly.
-- Statement-level with transition tables: a bulk write (a restore, a migration, an incident)
-- is captured by one INSERT ... SELECT instead of one trigger call per row. TG_ARGV holds the
-- primary-key columns.
CREATE OR REPLACE FUNCTION {SCHEMA}.capture_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key_args text;
    on_keys text;
    first_key text := quote_ident(TG_ARGV[0]);
    target text := '{SCHEMA}.changes (table_name, op, key, old, new)';
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT string_agg(format('%L, n.%I', c, c), ', ') INTO key_args FROM unnest(TG_ARGV) c;
        EXECUTE format('INSERT INTO %s SELECT %L, ''I'', jsonb_build_object(%s), NULL, to_jsonb(n) '
                       'FROM new_rows n', target, TG_TABLE_NAME, key_args);
    ELSIF TG_OP = 'DELETE' THEN
        SELECT string_agg(format('%L, o.%I', c, c), ', ') INTO key_args FROM unnest(TG_ARGV) c;
        EXECUTE format('INSERT INTO %s SELECT %L, ''D'', jsonb_build_object(%s), to_jsonb(o), NULL '
                       'FROM old_rows o', target, TG_TABLE_NAME, key_args);
    ELSE
        -- Rows are paired by key; an UPDATE that changes a key reads as a delete and an insert.
        SELECT string_agg(format('%L, coalesce(n.%I, o.%I)', c, c, c), ', '),
               string_agg(format('o.%I = n.%I', c, c), ' AND ')
          INTO key_args, on_keys FROM unnest(TG_ARGV) c;
        EXECUTE format(
            'INSERT INTO %1$s SELECT %2$L, '
            'CASE WHEN o.%3$s IS NULL THEN ''I'' WHEN n.%3$s IS NULL THEN ''D'' ELSE ''U'' END, '
            'jsonb_build_object(%4$s), '
            'CASE WHEN o.%3$s IS NULL THEN NULL ELSE to_jsonb(o) END, '
            'CASE WHEN n.%3$s IS NULL THEN NULL ELSE to_jsonb(n) END '
            'FROM old_rows o FULL JOIN new_rows n ON %5$s',
            target, TG_TABLE_NAME, first_key, key_args, on_keys);
    END IF;
    RETURN NULL;
END $$;
DROP FUNCTION IF EXISTS {SCHEMA}.capture_row() CASCADE;

CREATE OR REPLACE FUNCTION {SCHEMA}.capture_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO {SCHEMA}.changes (table_name, op) VALUES (TG_TABLE_NAME, 'T');
    RETURN NULL;
END $$;
REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM PUBLIC;
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

    @property
    def warnings(self) -> tuple[str, ...]:
        return () if self.commit_timestamps else (COMMIT_ORDER_WARNING,)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def install(conn: asyncpg.Connection, tables: tuple[str, ...] | None = None,
                  schema: str = "public") -> CaptureInstall:
    """Install or refresh capture on `tables` (default: every table with a primary key but
    audit_log and vaxvault_migrations). Raises CaptureError for an unknown table."""
    chosen: list[TableDef] = await describe_tables(conn, schema, tables)
    if tables is None:
        chosen = [t for t in chosen if t.name not in NOT_CAPTURED]
    try:
        async with conn.transaction():
            await conn.execute(_SETUP)
            for table in chosen:
                args = ", ".join(_literal(c) for c in table.primary_key)
                for event, transition in _TRIGGER_EVENTS:
                    await conn.execute(
                        f"CREATE OR REPLACE TRIGGER {TRIGGER}_{event.lower()} AFTER {event} "
                        f"ON {table.qualified} REFERENCING {transition} FOR EACH STATEMENT "
                        f"EXECUTE FUNCTION {SCHEMA}.capture_rows({args})")
                await conn.execute(
                    f"CREATE OR REPLACE TRIGGER {TRUNCATE_TRIGGER} BEFORE TRUNCATE "
                    f"ON {table.qualified} FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.capture_truncate()")
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.captured VALUES ($1, $2, $3) ON CONFLICT (table_name) "
                    "DO UPDATE SET schema_name = excluded.schema_name, primary_key = excluded.primary_key",
                    table.name, table.schema, list(table.primary_key))
            watermark = await conn.fetchval(f"SELECT watermark FROM {SCHEMA}.state")
            tracked = await conn.fetchval("SELECT current_setting('track_commit_timestamp')::boolean")
    except asyncpg.PostgresError as exc:
        raise CaptureError(f"cannot install change capture: {exc}") from exc
    return CaptureInstall(tuple(t.name for t in chosen), watermark, bool(tracked))


async def captured_tables(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(schema, table) of every captured table; CaptureError when capture is not installed."""
    installed = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{SCHEMA}.captured")
    if not installed:
        raise CaptureError("change capture is not installed in this database; run 'vaxvault backup init'")
    rows = await conn.fetch(f"SELECT schema_name, table_name FROM {SCHEMA}.captured ORDER BY table_name")
    return [(r["schema_name"], r["table_name"]) for r in rows]


