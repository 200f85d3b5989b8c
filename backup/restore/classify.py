"""The per-row rule of backup/restore/decision.py, applied to every candidate row at once in SQL.

The table's changes after T (shipped segments, then the live log's unshipped ones) are loaded into
a TEMP table; PostgreSQL parses the segment's JSON lines itself (COPY), so a restore of hundreds
of thousands of rows never holds their images in Python. `classify` then writes one row per
candidate key with its action into `<temp>_act`. `decide` stays the readable specification; the
tests hold both to the same cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from backup.restore.asof import LiveTable
from backup.restore.changes import create_change_table, load_live_log, load_segments
from backup.restore.decision import Action, Comparison
from backup.restore.parents import foreign_keys, kept_parents_sql
from backup.restore.predicate import Expr
from backup.restore.predicate_sql import quote_identifier, to_sql
from backup.restore.source import LIVE_LOG, History
from backup.storage.codec import Key
from backup.storage.repository import Repository


def quoted(name: str) -> str:
    return quote_identifier(name)


async def load_changes_after(conn: asyncpg.Connection, repo: Repository, key: Key | None, history: History,
                             live: LiveTable, as_of: datetime, temp: str) -> None:
    """Fill change table `<temp>_after` with the table's changes committed after `as_of`: the
    same history (segments, then the live log when it joins them) that rebuilt the rows at T."""
    after, row_type = f"{temp}_after", quoted(temp)
    await create_change_table(conn, after, row_type, live.columns, live.primary_key)
    await load_segments(conn, repo, key, history.segments, live.name, after, row_type, live.columns,
                        after=as_of)
    if history.live_log:
        await load_live_log(conn, LIVE_LOG, live.name, after, row_type, live.columns,
                            history.snapshot.position, after=as_of)
    await conn.execute(f"ANALYZE {quoted(after)}")


@dataclass(frozen=True)
class Classified:
    matched: int
    counts: dict[str, int]
    overwritten: int  # conflicts that will be restored anyway (on_conflict overwrite)


async def classify(conn: asyncpg.Connection, live: LiveTable, temp: str, where: Expr | None,
                   comparison: Comparison, overwrite: bool, trust_kept_keys: bool = True) -> Classified:
    """Write `<temp>_act` (key, gone, decided, action, first_position, changes, last_position) for
    every row at T that matches `where` and is missing now or differs in the compared columns.
    decided: reinsert | write_back | conflict; action: what to do (a conflict is 'skip' unless
    overwrite, then reinsert or write_back). trust_kept_keys=False probes every unique index for
    every row (the path before the kept-key shortcut; tests compare the two)."""
    asof, after, act = quoted(temp), quoted(f"{temp}_after"), quoted(f"{temp}_act")
    unique = await unique_keys(conn, live)
    condition, params = to_sql(where, live.types, alias="a") if where is not None else ("TRUE", [])
    keys = [quoted(c) for c in live.primary_key]
    join = " AND ".join(f"l.{k} = a.{k}" for k in keys)
    key_list = ", ".join(keys)
    key_match = " AND ".join(f"h.{k} = a.{k}" for k in keys)
    mine = ", ".join(f"a.{quoted(c)}" for c in comparison.columns)
    theirs = ", ".join(f"l.{quoted(c)}" for c in comparison.columns)
    # The first change's image after T (the damage) rides along with its op: one join of the
    # change table, not one for the op and one for the image.
    first_image = "".join(f", f.{quoted(c)} AS vv_d{n}" for n, c in enumerate(comparison.columns))
    damaged = ", ".join(f"h.vv_d{n}" for n in range(len(comparison.columns)))
    gone = f"l.{keys[0]} IS NULL"
    # The damage removed the row when a TRUNCATE came first or the row's first change deleted it.
    removes = ("((t.first_position IS NOT NULL AND (h.first_position IS NULL "
               "OR t.first_position < h.first_position)) OR h.first_op IN ('D', 'T'))")
    damage_same = (f"CASE WHEN {removes} THEN {gone} "
                   f"ELSE NOT ({gone}) AND ROW({damaged}) IS NOT DISTINCT FROM ROW({theirs}) END")
    restore = f"CASE WHEN {gone} THEN 'reinsert' ELSE 'write_back' END"
    first = "least(h.first_position, t.first_position)"
    kept = _kept_keys(unique, gone)
    parents = kept_parents_sql(await foreign_keys(conn, live), gone)
    # What is done: the decision, except that a conflict is skipped unless overwriting (and a
    # taken unique key cannot be overwritten: _unique_conflicts skips those rows).
    conflict_action = restore if overwrite else "'skip'"
    await conn.execute(f"""
        CREATE TEMP TABLE {act} ON COMMIT DROP AS
        WITH g AS (
            SELECT {key_list}, min(vv_position) AS first_position, count(*) AS changes,
                   max(vv_position) AS last_position
            FROM {after} WHERE vv_op <> 'T' GROUP BY {key_list}),
        h AS (
            SELECT g.*, f.vv_op AS first_op{first_image}
            FROM g JOIN {after} f ON f.vv_position = g.first_position),
        t AS (SELECT min(vv_position) AS first_position, count(*) AS changes,
                     max(vv_position) AS last_position
              FROM {after} WHERE vv_op = 'T')
        SELECT {", ".join(f"a.{k}" for k in keys)}, {gone} AS gone,
               CASE WHEN {first} IS NULL OR {damage_same} THEN {restore} ELSE 'conflict' END AS decided,
               CASE WHEN {first} IS NULL OR {damage_same} THEN {restore} ELSE {conflict_action} END
               AS action, NULL::text AS taken_by,
               {first} AS first_position,
               coalesce(h.changes, 0) + coalesce(t.changes, 0) AS changes,
               greatest(h.last_position, t.last_position) AS last_position,
               {kept} AS kept_keys, {parents} AS kept_parents
        FROM {asof} a
        LEFT JOIN {live.qualified} l ON {join}
        LEFT JOIN h ON {key_match}
        CROSS JOIN t
        WHERE ({condition}) AND ({gone} OR ROW({mine}) IS DISTINCT FROM ROW({theirs}))""", *params)
    await _unique_conflicts(conn, live, temp, unique, trust_kept_keys)
    await conn.execute(f"ANALYZE {act}")
    matched = await conn.fetchval(f"SELECT count(*) FROM {asof} a WHERE {condition}", *params)
    counts, overwritten = await count_decisions(conn, temp)
    return Classified(int(matched), counts, overwritten)


# Every unique index but the primary key, constraint-backed or not: its plain columns, whether it
# has expressions (then only applying can tell), whether NULLs count as equal, whether it is partial.
_UNIQUE = """
SELECT c.relname AS name,
       ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) AS columns,
       i.indexprs IS NOT NULL AS expressions, i.indnullsnotdistinct AS nulls_equal,
       i.indpred IS NOT NULL AS partial
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass($1) AND i.indisunique AND NOT i.indisprimary ORDER BY c.relname
"""


@dataclass(frozen=True)
class UniqueKey:
    """A unique index other than the primary key that classify can check (plain columns only)."""

    name: str
    columns: tuple[str, ...]
    nulls_equal: bool
    partial: bool

    @property
    def label(self) -> str:
        return f"{self.name} ({', '.join(self.columns)})"


async def unique_keys(conn: asyncpg.Connection, live: LiveTable) -> list[UniqueKey]:
    """The checkable unique indexes of `live`. Indexes on expressions are left to apply_actions,
    which turns a violation into a conflict."""
    return [UniqueKey(row["name"], tuple(row["columns"]), row["nulls_equal"], row["partial"])
            for row in await conn.fetch(_UNIQUE, live.qualified)
            if not row["expressions"] and row["columns"] and set(row["columns"]) <= set(live.columns)]


def _kept_keys(unique: list[UniqueKey], gone: str) -> str:
    """SQL (in classify's join of a = row at T, l = live row with its key) for a boolean array,
    one per index of `unique`: true when the live row holding this primary key already holds the
    row's values at T in that index. Then no OTHER live row can hold them (the index is unique
    and whole), so writing the row back cannot collide there and the index need not be probed.
    A partial index is always probed: rows outside its predicate may share values."""
    items = [f"(NOT ({gone}) AND ROW({', '.join(f'l.{quoted(c)}' for c in key.columns)}) "
             f"IS NOT DISTINCT FROM ROW({', '.join(f'a.{quoted(c)}' for c in key.columns)}))"
             if not key.partial else "false" for key in unique]
    return f"ARRAY[{', '.join(items)}]::boolean[]" if items else "'{}'::boolean[]"


async def _unique_conflicts(conn: asyncpg.Connection, live: LiveTable, temp: str,
                            unique: list[UniqueKey], trust_kept_keys: bool) -> None:
    """A row to restore (re-insert or write back) whose unique key, other than the primary key, a
    different live row now holds (a dose 1 recorded again after the incident) is a conflict, not a
    failed restore. Partial indexes are checked as if whole: at worst a row is listed, never lost.
    A row whose live self keeps its values in the index (`kept_keys`) is not probed: for the
    incident's 266,561 written-back doses that was 2.5-3.8 s of index probes and heap visits."""
    act, asof = quoted(f"{temp}_act"), quoted(temp)
    match = " AND ".join(f"k.{quoted(c)} = a.{quoted(c)}" for c in live.primary_key)
    other = " OR ".join(f"l.{quoted(c)} IS DISTINCT FROM a.{quoted(c)}" for c in live.primary_key)
    for number, key in enumerate(unique, start=1):
        same = " AND ".join(f"l.{quoted(c)} = a.{quoted(c)}" if not key.nulls_equal
                            else f"l.{quoted(c)} IS NOT DISTINCT FROM a.{quoted(c)}" for c in key.columns)
        kept = f"AND NOT k.kept_keys[{number}] " if trust_kept_keys else ""
        await conn.execute(
            f"UPDATE {act} k SET decided = 'conflict', action = 'skip', taken_by = $1 FROM {asof} a "
            f"WHERE {match} "
            f"AND k.decided IN ('reinsert', 'write_back') AND k.taken_by IS NULL {kept}"
            f"AND EXISTS (SELECT 1 FROM {live.qualified} l WHERE {same} AND ({other}))", key.label)


async def count_decisions(conn: asyncpg.Connection, temp: str) -> tuple[dict[str, int], int]:
    """(decided -> rows, conflicts restored anyway) of `<temp>_act`."""
    act = quoted(f"{temp}_act")
    counts = {row["action"]: row["n"] for row in
              await conn.fetch(f"SELECT decided AS action, count(*) AS n FROM {act} GROUP BY decided")}
    overwritten = await conn.fetchval(f"SELECT count(*) FROM {act} WHERE decided = 'conflict' "
                                      "AND action <> 'skip'")
    return ({a.value: int(counts.get(a.value, 0)) for a in Action if a != Action.UNTOUCHED},
            int(overwritten))


def reason(action: str, gone: bool, first_position: int | None, changes: int,
           last_position: int | None, taken_by: str | None = None) -> str:
    """The words of restore_decision.decide for a classified row."""
    if taken_by:
        return f"its unique key {taken_by} is held by a row recorded since; that row is kept"
    if action == Action.CONFLICT:
        what = "deleted by a later change" if gone else "changed after the damage"
        return f"{what} (last at position {last_position})"
    if first_position is None:
        return "no change recorded after T"
    later = changes - 1
    note = f", {later} later change(s) left the compared columns alone" if later else ""
    return f"unchanged since the damage at position {first_position}{note}"
