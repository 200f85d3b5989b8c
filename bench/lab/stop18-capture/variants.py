"""Break-down variants of the capture trigger for bench.capture_cost (experiments, not shipped).
Run from the worktree: PYTHONPATH=. .venv/bin/python /work/notes/capture-scripts/variants.py \
    --variants off,on,empty,... [--seconds 0 --serial 5000 --rounds 3]"""
import sys
from backup.capture import triggers
from backup.capture.catalog import describe_tables
from bench import capture_cost as cc

S = triggers.SCHEMA

async def _body(conn, body, level="STATEMENT", secdef=True, events=("INSERT",), drop_txid_idx=False):
    await triggers.install(conn)
    if drop_txid_idx:
        await conn.execute(f"DROP INDEX IF EXISTS {S}.changes_txid_idx")
    for ev in ("insert", "update", "delete"):
        await conn.execute(f"DROP TRIGGER {triggers.TRIGGER}_{ev} ON doses")
    attrs = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp" if secdef else ""
    await conn.execute(f"""CREATE OR REPLACE FUNCTION {S}.exp_capture() RETURNS trigger
        LANGUAGE plpgsql {attrs} AS $$ BEGIN {body} RETURN NULL; END $$""")
    ref = "REFERENCING NEW TABLE AS new_rows" if level == "STATEMENT" else ""
    await conn.execute(f"CREATE TRIGGER exp AFTER INSERT ON public.doses {ref} FOR EACH {level} "
                       f"EXECUTE FUNCTION {S}.exp_capture()")

def v(**kw):
    async def setup(conn):
        await _body(conn, **kw)
    return setup

async def _on_noidx(conn):
    await triggers.install(conn)
    await conn.execute(f"DROP INDEX IF EXISTS {S}.changes_txid_idx")

T = f"{S}.changes (table_name, op, key, old, new)"
EXTRA = {
    "empty": v(body=""),
    "empty_nosec": v(body="", secdef=False),
    "const": v(body=f"INSERT INTO {S}.changes (table_name, op) VALUES ('doses', 'I');"),
    "const_nosec": v(body=f"INSERT INTO {S}.changes (table_name, op) VALUES ('doses', 'I');", secdef=False),
    "stmt_full_nosec": v(body=f"INSERT INTO {T} SELECT 'doses', 'I', json_build_object('id', n.id), NULL, to_json(n) FROM new_rows n;", secdef=False),
    "row_full": v(body=f"INSERT INTO {T} VALUES ('doses', 'I', json_build_object('id', NEW.id), NULL, to_json(NEW));", level="ROW"),
    "row_full_nosec": v(body=f"INSERT INTO {T} VALUES ('doses', 'I', json_build_object('id', NEW.id), NULL, to_json(NEW));", level="ROW", secdef=False),
    "row_empty": v(body="", level="ROW", secdef=False),
    "on_noidx": _on_noidx,
}
cc.VARIANTS.update(EXTRA)

FULL = f"INSERT INTO {T} SELECT 'doses', 'I', pg_catalog.json_build_object('id', n.id), NULL, pg_catalog.to_json(n) FROM new_rows n;"
async def _noset(conn, drop_idx=False):
    await _body(conn, FULL, secdef=False, drop_txid_idx=drop_idx)
    await conn.execute(f"ALTER FUNCTION {S}.exp_capture() SECURITY DEFINER")
async def _noset_noidx(conn):
    await _noset(conn, True)
cc.VARIANTS.update({
    "stmt_full": v(body=FULL),
    "secdef_noset": _noset,
    "lean": _noset_noidx,
    "nokey": v(body=f"INSERT INTO {T} SELECT 'doses', 'I', NULL, NULL, to_json(n) FROM new_rows n;"),
    "noimg": v(body=f"INSERT INTO {T} SELECT 'doses', 'I', json_build_object('id', n.id), NULL, NULL FROM new_rows n;"),
})

ROWFULL = f"INSERT INTO {T} VALUES ('doses', 'I', pg_catalog.json_build_object('id', NEW.id), NULL, pg_catalog.to_json(NEW));"
async def _row_lean(conn):
    await _body(conn, ROWFULL, level="ROW", secdef=False, drop_txid_idx=True)
    await conn.execute(f"ALTER FUNCTION {S}.exp_capture() SECURITY DEFINER")
cc.VARIANTS.update({"row_lean": _row_lean})

async def _main_trigger(conn):
    """main's capture (28b50c2) for doses: the same body with search_path pinned, and the txid index."""
    await triggers.install(conn)
    await conn.execute(f'ALTER FUNCTION {S}."capture__doses"() SET search_path = pg_catalog, pg_temp')
    await conn.execute(f"CREATE INDEX changes_txid_idx ON {S}.changes (txid)")
cc.VARIANTS.update({"main": _main_trigger})

async def _noset(conn2):
    """branch capture-noset: the capture branch's function without its SET search_path."""
    await triggers.install(conn2)
    await conn2.execute(f'ALTER FUNCTION {S}."capture__doses"() RESET search_path')
cc.VARIANTS.update({"noset": _noset})
if __name__ == "__main__":
    cc.main()
