"""The capture function with every name qualified and the change log without its txid index
record exactly what the earlier version did, whatever search_path the writer set; `backup init`
upgrades an earlier install."""

from __future__ import annotations

import asyncio
import json

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup.capture.triggers import SCHEMA, install

# The capture function of the previous version for doses (key "id"), the reference the lean
# one is compared with: unqualified names, made safe by pinning search_path on every call.
_REFERENCE = f"""
CREATE OR REPLACE FUNCTION {SCHEMA}."capture__doses"() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {SCHEMA}.changes (table_name, op, key, old, new)
        SELECT 'doses', 'I', json_build_object('id', n."id"), NULL, to_json(n) FROM new_rows n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {SCHEMA}.changes (table_name, op, key, old, new)
        SELECT 'doses', 'D', json_build_object('id', o."id"), to_json(o), NULL FROM old_rows o;
    ELSE
        INSERT INTO {SCHEMA}.changes (table_name, op, key, old, new)
        SELECT 'doses', CASE WHEN o."id" IS NULL THEN 'I' WHEN n."id" IS NULL THEN 'D' ELSE 'U' END,
               json_build_object('id', coalesce(n."id", o."id")),
               CASE WHEN o."id" IS NULL THEN NULL ELSE to_json(o) END,
               CASE WHEN n."id" IS NULL THEN NULL ELSE to_json(n) END
        FROM old_rows o FULL JOIN new_rows n ON o."id" = n."id";
    END IF;
    RETURN NULL;
END $$;
CREATE INDEX changes_txid_idx ON {SCHEMA}.changes (txid);
"""

# Objects a writer could put ahead of pg_catalog in its search_path: a to_json that forges row
# images and a text equality that is never true (which would send an INSERT down the UPDATE
# branch). The capture function runs as its owner, so resolving either would also run the
# writer's code with the owner's rights.
_HOSTILE = """
CREATE SCHEMA hostile;
CREATE FUNCTION hostile.to_json(anyelement) RETURNS json LANGUAGE sql AS $$ SELECT '"forged"'::json $$;
CREATE FUNCTION hostile.never(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT false $$;
CREATE OPERATOR hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.never);
"""
_HOSTILE_PATH = "SET LOCAL search_path = hostile, pg_catalog, public"

# Writes whose rows and values do not depend on the transaction's clock or on sequences (each
# run is rolled back and repeated): explicit ids and timestamps for new doses, updated_at moved
# by the writer (the touch trigger keeps a writer's value).
_NEW_DOSES = """
INSERT INTO doses (id, recipient_id, dose_number, vaccine_code, lot_number, administered_on,
                   center_id, recorded_by, created_at, updated_at)
SELECT 9000000 + r.id, r.id, 6, 'AZD1222', $2, DATE '2024-03-01', r.center_id, 'test',
       TIMESTAMPTZ '2024-03-01 10:00+00', TIMESTAMPTZ '2024-03-01 10:00+00'
FROM recipients r
WHERE NOT EXISTS (SELECT 1 FROM doses d WHERE d.recipient_id = r.id AND d.dose_number = 6)
ORDER BY r.id LIMIT $1
"""
WRITES = st.one_of(
    st.tuples(st.just("insert"), st.integers(1, 4), st.text(min_size=1, max_size=12)),
    st.tuples(st.just("update"), st.integers(2, 40), st.text(min_size=1, max_size=12)),
    st.tuples(st.just("forget_dates"), st.integers(2, 40), st.just("")),
    st.tuples(st.just("move"), st.integers(0, 3), st.just("")),
    st.tuples(st.just("delete"), st.integers(20, 200), st.just("")),
)


async def _write(conn: asyncpg.Connection, kind: str, n: int, text: str) -> None:
    text = text.replace("\x00", "") or "x"
    if kind == "insert":
        await conn.execute(_NEW_DOSES, n, text)
    elif kind == "update":
        await conn.execute("UPDATE doses SET lot_number = $2, updated_at = updated_at + interval '1 s' "
                           "WHERE id % $1 = 1", n, text[:64])
    elif kind == "forget_dates":
        await conn.execute("UPDATE doses SET administered_on = NULL, next_due_on = NULL, "
                           "updated_at = updated_at + interval '1 s' WHERE id % $1 = 0", n)
    elif kind == "move":  # a key change: read as a delete and an insert
        await conn.execute("UPDATE doses SET id = id + 5000000, updated_at = updated_at + interval '1 s' "
                           "WHERE id = (SELECT min(id) FROM doses) + $1", n)
    else:
        await conn.execute("DELETE FROM doses WHERE id % $1 = 3", n)


async def _captured(conn: asyncpg.Connection, writes: list[tuple[str, int, str]], hostile: bool,
                    reference: bool) -> list[list[tuple[str, str, object, object, object]]]:
    """The change log each write leaves (rows of one statement sorted: their order within a
    statement is the join's), in a transaction that is rolled back."""
    tx = conn.transaction()
    await tx.start()
    try:
        if reference:
            await conn.execute(_REFERENCE)
        if hostile:
            await conn.execute(_HOSTILE)
            await conn.execute(_HOSTILE_PATH)
        statements = []
        last = await conn.fetchval(f"SELECT coalesce(max(position), 0) FROM {SCHEMA}.changes")
        for kind, n, text in writes:
            await _write(conn, kind, n, text)
            rows = await conn.fetch(
                f"SELECT position, table_name, op::text AS op, key::text AS key, old::text AS old, "
                f"new::text AS new FROM {SCHEMA}.changes WHERE position > $1 ORDER BY position", last)
            if rows:
                last = rows[-1]["position"]
            statements.append(sorted(
                ((r["table_name"], r["op"], *(json.loads(r[c]) if r[c] is not None else None
                                              for c in ("key", "old", "new"))) for r in rows),
                key=lambda change: json.dumps(change, sort_keys=True)))
        return statements
    finally:
        await tx.rollback()


async def _compare(url: str, writes: list[tuple[str, int, str]], hostile: bool) -> None:
    conn = await asyncpg.connect(url)
    try:
        await install(conn, ("doses",))
        lean = await _captured(conn, writes, hostile, reference=False)
        earlier = await _captured(conn, writes, hostile, reference=True)
        assert lean == earlier
        assert sum(map(len, lean)) > 0 or all(kind == "delete" for kind, _, _ in writes)
        assert "forged" not in json.dumps(lean)
    finally:
        await conn.close()


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(WRITES, min_size=1, max_size=6), hostile=st.booleans())
def test_the_lean_function_logs_what_the_earlier_one_did(seeded_database_url: str,
                                                         writes: list[tuple[str, int, str]],
                                                         hostile: bool) -> None:
    asyncio.run(_compare(seeded_database_url, writes, hostile))


async def test_a_hostile_search_path_changes_nothing_captured(seeded_database_url: str) -> None:
    conn = await asyncpg.connect(seeded_database_url)
    try:
        await install(conn, ("doses",))
        async with conn.transaction():
            await conn.execute(_HOSTILE)
            await conn.execute(_HOSTILE_PATH)
            await conn.execute(_NEW_DOSES, 1, "HOSTILE-1")
            await conn.execute("UPDATE doses SET lot_number = 'HOSTILE-2' WHERE id = 1")
        rows = await conn.fetch(f"SELECT op::text AS op, new::text AS new FROM {SCHEMA}.changes "
                                "ORDER BY position")
        assert [r["op"] for r in rows] == ["I", "U"]
        assert [json.loads(r["new"])["lot_number"] for r in rows] == ["HOSTILE-1", "HOSTILE-2"]
    finally:
        await conn.close()


async def test_init_upgrades_an_earlier_install(seeded_database_url: str) -> None:
    """The txid index of earlier versions goes, the function is replaced; the log stays."""
    conn = await asyncpg.connect(seeded_database_url)
    try:
        await install(conn, ("doses",))
        await conn.execute(_REFERENCE)
        await conn.execute("UPDATE doses SET lot_number = 'BEFORE-UPGRADE' WHERE id = 1")
        await install(conn, ("doses",))
        indexes = await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1 "
                                   "AND tablename = 'changes'", SCHEMA)
        assert [r["indexname"] for r in indexes] == ["changes_pkey"]
        body = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE oid = $1::regprocedure",
                                   f'{SCHEMA}."capture__doses"()')
        assert "pg_catalog.to_json" in body
        lots = await conn.fetch(f"SELECT new ->> 'lot_number' AS lot FROM {SCHEMA}.changes ORDER BY position")
        assert [r["lot"] for r in lots] == ["BEFORE-UPGRADE"]
    finally:
        await conn.close()
