"""The per-row rule of backup/restore_decision.py, applied to every candidate row at once in SQL.

The table's changes after T (shipped segments, then the live log's unshipped ones) are loaded into
a TEMP table; PostgreSQL parses the segment's JSON lines itself (COPY), so a restore of hundreds
of thousands of rows never holds their images in Python. `classify` then writes one row per
candidate key with its action into `<temp>_act`. `decide` stays the readable specification; the
tests hold both to the same cases.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from backup import codec
from backup.codec import Key
from backup.predicate import Expr
from backup.predicate_sql import quote_identifier, to_sql
from backup.reader import read_object
from backup.repository import Repository
from backup.restore_asof import LiveTable
from backup.restore_decision import Action, Comparison
from backup.restore_source import LIVE_LOG, History

# Bytes that never occur raw in a JSON line (JSON escapes control characters), so COPY's CSV mode
# with them as delimiter and quote takes each line verbatim.
_DELIMITER = "\x02"
_QUOTE = "\x01"


def quoted(name: str) -> str:
    return quote_identifier(name)


async def load_changes_after(conn: asyncpg.Connection, repo: Repository, key: Key | None, history: History,
                             live: LiveTable, as_of: datetime, use_live_log: bool, temp: str) -> bool:
    """Fill `<temp>_after` with the table's changes committed after `as_of`; return whether the live
    change log was there to add the unshipped ones."""
    after, lines = quoted(f"{temp}_after"), quoted(f"{temp}_lines")
    await conn.execute(f"CREATE TEMP TABLE {after} (position bigint PRIMARY KEY, op text, key jsonb, "
                       "new jsonb) ON COMMIT DROP")
    await conn.execute(f"CREATE TEMP TABLE {lines} (line jsonb) ON COMMIT DROP")
    for segment in history.segments:
        if live.name not in segment.tables or (
                segment.last_committed_at is not None and segment.last_committed_at <= as_of):
            continue
        data = codec.decode(read_object(repo, segment.object), segment.object.key, key)
        await conn.copy_to_table(f"{temp}_lines", source=io.BytesIO(data), format="csv",
                                 delimiter=_DELIMITER, quote=_QUOTE)
        await conn.execute(
            f"INSERT INTO {after} SELECT (line->>'position')::bigint, line->>'op', "
            "nullif(line->'key', 'null'::jsonb), nullif(line->'new', 'null'::jsonb) "
            f"FROM {lines} WHERE line->>'table' = $1 AND (line->>'committed_at')::timestamptz > $2 "
            "ON CONFLICT (position) DO NOTHING", live.name, as_of)
        await conn.execute(f"TRUNCATE {lines}")
    has_log = use_live_log and await conn.fetchval("SELECT to_regclass($1)", LIVE_LOG) is not None
    if has_log:
        await conn.execute(
            f"INSERT INTO {after} SELECT position, op::text, key, new FROM {LIVE_LOG} "
            "WHERE table_name = $1 AND coalesce(pg_xact_commit_timestamp(txid::xid), captured_at) > $2 "
            "ON CONFLICT (position) DO NOTHING", live.name, as_of)
    await conn.execute(f"ANALYZE {after}")
    return has_log


@dataclass(frozen=True)
class Classified:
    matched: int
    counts: dict[str, int]


async def classify(conn: asyncpg.Connection, live: LiveTable, temp: str, where: Expr | None,
                   comparison: Comparison, overwrite: bool) -> Classified:
    """Write `<temp>_act` (key, gone, decided, action, first_position, changes, last_position) for
    every row at T that matches `where` and is missing now or differs in the compared columns.
    decided: reinsert | write_back | conflict; action: what to do (a conflict is 'skip' unless
    overwrite, then reinsert or write_back)."""
    asof, after, act = quoted(temp), quoted(f"{temp}_after"), quoted(f"{temp}_act")
    condition, params = to_sql(where, live.types, alias="a") if where is not None else ("TRUE", [])
    keys = [quoted(c) for c in live.primary_key]
    join = " AND ".join(f"l.{k} = a.{k}" for k in keys)
    key_json = "jsonb_build_object(" + ", ".join(
        f"'{c.replace(chr(39), chr(39) * 2)}', a.{quoted(c)}" for c in live.primary_key) + ")"
    mine = ", ".join(f"a.{quoted(c)}" for c in comparison.columns)
    theirs = ", ".join(f"l.{quoted(c)}" for c in comparison.columns)
    damaged = ", ".join(f"d.{quoted(c)}" for c in comparison.columns)
    gone = f"l.{keys[0]} IS NULL"
    # The damage removed the row when a TRUNCATE came first or the row's first change deleted it.
    removes = ("((t.first_position IS NOT NULL AND (h.first_position IS NULL "
               "OR t.first_position < h.first_position)) OR h.first_op IN ('D', 'T'))")
    damage_same = (f"CASE WHEN {removes} THEN {gone} "
                   f"ELSE NOT ({gone}) AND ROW({damaged}) IS NOT DISTINCT FROM ROW({theirs}) END")
    restore = f"CASE WHEN {gone} THEN 'reinsert' ELSE 'write_back' END"
    first = "least(h.first_position, t.first_position)"
    await conn.execute(f"""
        CREATE TEMP TABLE {act} ON COMMIT DROP AS
        WITH h AS (
            SELECT DISTINCT ON (key) key, position AS first_position, op AS first_op, new AS first_new,
                   count(*) OVER (PARTITION BY key) AS changes,
                   max(position) OVER (PARTITION BY key) AS last_position
            FROM {after} WHERE key IS NOT NULL ORDER BY key, position),
        t AS (SELECT min(position) AS first_position, count(*) AS changes, max(position) AS last_position
              FROM {after} WHERE op = 'T')
        SELECT {", ".join(f"a.{k}" for k in keys)}, {gone} AS gone,
               CASE WHEN {first} IS NULL OR {damage_same} THEN {restore} ELSE 'conflict' END AS decided,
               ''::text AS action,
               {first} AS first_position,
               coalesce(h.changes, 0) + coalesce(t.changes, 0) AS changes,
               greatest(h.last_position, t.last_position) AS last_position
        FROM {asof} a
        LEFT JOIN {live.qualified} l ON {join}
        LEFT JOIN h ON h.key = {key_json}
        CROSS JOIN t
        LEFT JOIN LATERAL jsonb_populate_record(NULL::{asof}, h.first_new) d ON true
        WHERE ({condition}) AND ({gone} OR ROW({mine}) IS DISTINCT FROM ROW({theirs}))""", *params)
    # What is done: the decision, except that a conflict is skipped unless overwriting.
    conflict_action = "CASE WHEN gone THEN 'reinsert' ELSE 'write_back' END" if overwrite else "'skip'"
    await conn.execute(f"UPDATE {act} SET action = CASE WHEN decided = 'conflict' THEN {conflict_action} "
                       "ELSE decided END")
    await conn.execute(f"ANALYZE {act}")
    matched = await conn.fetchval(f"SELECT count(*) FROM {asof} a WHERE {condition}", *params)
    counts = {row["action"]: row["n"] for row in
              await conn.fetch(f"SELECT decided AS action, count(*) AS n FROM {act} GROUP BY decided")}
    return Classified(int(matched), {a.value: int(counts.get(a.value, 0)) for a in Action
                                     if a != Action.UNTOUCHED})


def reason(action: str, gone: bool, first_position: int | None, changes: int,
           last_position: int | None) -> str:
    """The words of restore_decision.decide for a classified row."""
    if action == Action.CONFLICT:
        what = "deleted by a later change" if gone else "changed after the damage"
        return f"{what} (last at position {last_position})"
    if first_position is None:
        return "no change recorded after T"
    later = changes - 1
    note = f", {later} later change(s) left the compared columns alone" if later else ""
    return f"unchanged since the damage at position {first_position}{note}"
