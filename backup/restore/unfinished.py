"""The mark a full restore leaves on its target until the target is a registry, and the sweep
that takes an unfinished restore away again.

A full restore loads on several connections, so the target sees its work commit in steps: the
schema first, then each table, index and key. Before the first of those commits, the restore
creates table `vaxvault_restore_unfinished` (its one row says which snapshot, as of when, since
when, and which objects and schema grants the database held before); the restore's last
transaction drops it together with making the rest whole. So a target is in one of three states:
as it was, unfinished (the marker is there: `db migrate` refuses it, the API is never ready on it),
or a registry. `clear` returns an unfinished target to the state before: it drops every object
created since the mark and revokes the schema grants added since, in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from backup.restore.predicate_sql import quote_identifier

MARKER = "vaxvault_restore_unfinished"

_SYSTEM = ("n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
           "AND n.nspname NOT LIKE 'pg\\_temp\\_%'")
_NOT_EXTENSION = ("NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = {catalog}::regclass "
                  "AND d.objid = {oid} AND d.deptype = 'e')")

# Every object a migration can create, as (drop order, kind for DROP, oid, name for DROP).
# Tables go first (their indexes, keys, triggers, policies and owned sequences go with them).
_OBJECTS = f"""
SELECT 1 AS step, CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                  WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind,
       c.oid::bigint AS oid, c.oid::regclass::text AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {_SYSTEM}
  AND {_NOT_EXTENSION.format(catalog="'pg_class'", oid="c.oid")}
  -- an identity or serial column's sequence goes with its table, and only so
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i'))
UNION ALL
SELECT 2, CASE p.prokind WHEN 'a' THEN 'AGGREGATE' WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
       p.oid::bigint, p.oid::regprocedure::text
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE {_SYSTEM} AND {_NOT_EXTENSION.format(catalog="'pg_proc'", oid="p.oid")}
UNION ALL
SELECT 3, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::bigint, t.oid::regtype::text
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE (t.typtype IN ('e', 'd', 'r')
       OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
  AND {_SYSTEM} AND {_NOT_EXTENSION.format(catalog="'pg_type'", oid="t.oid")}
UNION ALL
SELECT 4, 'SCHEMA', n.oid::bigint, quote_ident(n.nspname)
FROM pg_namespace n WHERE {_SYSTEM} AND n.nspname <> 'public'
  AND {_NOT_EXTENSION.format(catalog="'pg_namespace'", oid="n.oid")}
ORDER BY 1, 3
"""

# Schema privileges as 'schema|grantee|privilege' (grantee 0 is PUBLIC); a schema that was never
# granted on has no ACL, which means its owner's default one.
_SCHEMA_GRANTS = f"""
SELECT n.oid::bigint AS schema, quote_ident(n.nspname) AS name, a.grantee::bigint AS grantee,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS role,
       a.privilege_type AS privilege
FROM pg_namespace n CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE {_SYSTEM}
"""


@dataclass(frozen=True)
class Unfinished:
    """An unfinished full restore found on a target."""

    started_at: datetime
    snapshot_id: str
    as_of: datetime

    def describe(self) -> str:
        return (f"an unfinished 'restore full' (snapshot {self.snapshot_id} as of {self.as_of.isoformat()}, "
                f"started {self.started_at.isoformat()})")


def _grant_key(row: asyncpg.Record) -> str:
    return f"{row['schema']}|{row['grantee']}|{row['privilege']}"


async def mark(conn: asyncpg.Connection, snapshot_id: str, as_of: datetime) -> None:
    """Create the marker, with what the database holds now (call before building anything, in
    the transaction that builds the schema, so the marker commits with the first of it)."""
    objects = [int(row["oid"]) for row in await conn.fetch(_OBJECTS)]
    grants = [_grant_key(row) for row in await conn.fetch(_SCHEMA_GRANTS)]
    await conn.execute(f"""
        CREATE TABLE public.{MARKER} (
            started_at    timestamptz NOT NULL DEFAULT now(),
            snapshot_id   text NOT NULL,
            as_of         timestamptz NOT NULL,
            before        jsonb NOT NULL
        )""")
    await conn.execute(f"COMMENT ON TABLE public.{MARKER} IS 'vaxvault restore full has not finished here: "
                       "this database is not a registry yet; run the same restore full again (it clears "
                       "what the unfinished one built first) or drop and create the database'")
    await conn.execute(f"INSERT INTO public.{MARKER} (snapshot_id, as_of, before) VALUES ($1, $2, $3::jsonb)",
                       snapshot_id, as_of, json.dumps({"objects": objects, "schema_grants": grants}))


async def found(conn: asyncpg.Connection) -> Unfinished | None:
    """The unfinished restore the target holds, or None."""
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{MARKER}"):
        return None
    row = await conn.fetchrow(f"SELECT started_at, snapshot_id, as_of FROM public.{MARKER}")
    if row is None:
        return None
    return Unfinished(row["started_at"], row["snapshot_id"], row["as_of"])


async def finish(conn: asyncpg.Connection) -> None:
    """Drop the marker: the target is a registry (in the restore's last transaction)."""
    await conn.execute(f"DROP TABLE public.{MARKER}")


async def clear(conn: asyncpg.Connection) -> int:
    """Drop every object created since the marker and revoke the schema grants added since,
    marker included, in one transaction; the number of objects dropped. Nothing when unmarked.

    The caller must be the only one working on the target (it holds the migration lock)."""
    async with conn.transaction():
        before = await conn.fetchval(f"SELECT before FROM public.{MARKER}") \
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{MARKER}") else None
        if before is None:
            return 0
        kept = json.loads(before)
        objects, grants = set(kept["objects"]), set(kept["schema_grants"])
        dropped = 0
        for row in await conn.fetch(_OBJECTS):
            if int(row["oid"]) not in objects:
                # IF EXISTS: a table's sequences went with it; a schema's contents with it.
                await conn.execute(f"DROP {row['kind']} IF EXISTS {row['name']} CASCADE")
                dropped += 1
        for row in await conn.fetch(_SCHEMA_GRANTS):
            if _grant_key(row) not in grants and row["role"] is not None:
                await conn.execute(f"REVOKE {row['privilege']} ON SCHEMA {row['name']} FROM {row['role']}")
        await conn.execute(f"DROP TABLE IF EXISTS public.{quote_identifier(MARKER)}")
    return dropped
