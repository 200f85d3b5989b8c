"""Change capture: the vaxvault_backup schema, its change table, triggers and the watermark.

Idempotent: running install again adds tables, refreshes functions and keeps the watermark.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from backup.catalog import TableDef, describe_tables
from backup.errors import CaptureError

SCHEMA = "vaxvault_backup"
# Never captured by default: append-only history (in full snapshots only) and bookkeeping.
NOT_CAPTURED = ("audit_log", "vaxvault_migrations")
TRIGGER = "vaxvault_capture"
TRUNCATE_TRIGGER = "vaxvault_capture_truncate"

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
INSERT INTO {SCHEMA}.state (watermark) VALUES (pg_current_snapshot()::text) ON CONFLICT DO NOTHING;

-- SECURITY DEFINER: writers (the API role) may not touch the change log directly.
CREATE OR REPLACE FUNCTION {SCHEMA}.capture_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old_image jsonb;
    new_image jsonb;
    row_key jsonb;
BEGIN
    -- Each image is rendered once; this trigger is on every registry write's hot path.
    IF TG_OP <> 'INSERT' THEN old_image := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_image := to_jsonb(NEW); END IF;
    IF TG_NARGS = 1 THEN
        row_key := jsonb_build_object(TG_ARGV[0], coalesce(new_image, old_image) -> TG_ARGV[0]);
    ELSE
        SELECT jsonb_object_agg(col, coalesce(new_image, old_image) -> col) INTO row_key
        FROM unnest(TG_ARGV) AS col;
    END IF;
    INSERT INTO {SCHEMA}.changes (table_name, op, key, old, new)
    VALUES (TG_TABLE_NAME, left(TG_OP, 1), row_key, old_image, new_image);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION {SCHEMA}.capture_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO {SCHEMA}.changes (table_name, op) VALUES (TG_TABLE_NAME, 'T');
    RETURN NULL;
END $$;
REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM PUBLIC;
"""


@dataclass(frozen=True)
class CaptureInstall:
    tables: tuple[str, ...]
    watermark: str


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
                await conn.execute(
                    f"CREATE OR REPLACE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE "
                    f"ON {table.qualified} FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.capture_row({args})")
                await conn.execute(
                    f"CREATE OR REPLACE TRIGGER {TRUNCATE_TRIGGER} BEFORE TRUNCATE "
                    f"ON {table.qualified} FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.capture_truncate()")
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.captured VALUES ($1, $2, $3) ON CONFLICT (table_name) "
                    "DO UPDATE SET schema_name = excluded.schema_name, primary_key = excluded.primary_key",
                    table.name, table.schema, list(table.primary_key))
            watermark = await conn.fetchval(f"SELECT watermark FROM {SCHEMA}.state")
    except asyncpg.PostgresError as exc:
        raise CaptureError(f"cannot install change capture: {exc}") from exc
    return CaptureInstall(tuple(t.name for t in chosen), watermark)


async def captured_tables(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(schema, table) of every captured table; CaptureError when capture is not installed."""
    installed = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{SCHEMA}.captured")
    if not installed:
        raise CaptureError("change capture is not installed in this database; run 'vaxvault backup init'")
    rows = await conn.fetch(f"SELECT schema_name, table_name FROM {SCHEMA}.captured ORDER BY table_name")
    return [(r["schema_name"], r["table_name"]) for r in rows]


