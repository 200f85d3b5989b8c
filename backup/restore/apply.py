"""Applying a classified restore: re-insert and write back the rows marked in `<temp>_act`.

One bulk statement of each kind in a savepoint. A unique violation that classify could not foresee
(an index on an expression, a row restored by the same run) must not abort the restore: the bulk
work is rolled back to the savepoint and the rows are applied one at a time, each in its own
savepoint, and a row that still violates becomes a listed conflict.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from backup.restore.asof import LiveTable
from backup.restore.decision import Comparison
from backup.restore.predicate_sql import quote_identifier

# Violations that mean "another row holds this key", not a broken restore.
_KEY_TAKEN = (asyncpg.UniqueViolationError, asyncpg.ExclusionViolationError)


@dataclass(frozen=True)
class Applied:
    reinserted: int
    written_back: int
    conflicts_found: int  # rows turned into conflicts by a violation while applying


def _statements(live: LiveTable, temp: str, comparison: Comparison, one_row: str) -> tuple[str, str]:
    table = quote_identifier(temp)
    act = quote_identifier(f"{temp}_act")
    keys = ", ".join(quote_identifier(c) for c in live.primary_key)
    columns = ", ".join(quote_identifier(c) for c in live.columns)
    picked = ", ".join(f"a.{quote_identifier(c)}" for c in live.columns)
    insert = (f"INSERT INTO {live.qualified} ({columns}) OVERRIDING SYSTEM VALUE SELECT {picked} "
              f"FROM {table} a JOIN {act} k USING ({keys}) WHERE k.action = 'reinsert' {one_row} "
              f"ORDER BY {keys}")
    sets = ", ".join(f"{quote_identifier(c)} = a.{quote_identifier(c)}" for c in comparison.columns)
    match = " AND ".join(f"l.{quote_identifier(c)} = a.{quote_identifier(c)}" for c in live.primary_key)
    update = (f"UPDATE {live.qualified} l SET {sets} FROM {table} a JOIN {act} k USING ({keys}) "
              f"WHERE k.action = 'write_back' AND {match} {one_row}")
    return insert, update


async def apply_actions(conn: asyncpg.Connection, live: LiveTable, temp: str,
                        comparison: Comparison) -> Applied:
    """Apply `<temp>_act` inside the caller's transaction; rows whose key turned out to be taken
    are marked decided = 'conflict', action = 'skip', taken_by = the index, and counted."""
    insert, update = _statements(live, temp, comparison, "")
    try:
        async with conn.transaction():
            inserted = await conn.execute(insert)
            updated = await conn.execute(update)
        return Applied(int(inserted.split()[-1]), int(updated.split()[-1]), 0)
    except _KEY_TAKEN:
        pass
    return await _one_by_one(conn, live, temp, comparison)


async def _one_by_one(conn: asyncpg.Connection, live: LiveTable, temp: str,
                      comparison: Comparison) -> Applied:
    act = quote_identifier(f"{temp}_act")
    keys = ", ".join(quote_identifier(c) for c in live.primary_key)
    this = " AND ".join(f"k.{quote_identifier(c)} = ${n}" for n, c in enumerate(live.primary_key, start=1))
    insert, update = _statements(live, temp, comparison, f"AND {this}")
    reinserted = written_back = found = 0
    rows = await conn.fetch(f"SELECT {keys}, action FROM {act} WHERE action IN ('reinsert', 'write_back') "
                            f"ORDER BY {keys}")
    for row in rows:
        key = [row[c] for c in live.primary_key]
        try:
            async with conn.transaction():
                status = await conn.execute(insert if row["action"] == "reinsert" else update, *key)
        except _KEY_TAKEN as exc:
            found += 1
            name = getattr(exc, "constraint_name", None) or "a unique index"
            await conn.execute(f"UPDATE {act} k SET decided = 'conflict', action = 'skip', taken_by = "
                               f"${len(key) + 1} WHERE {this}", *key, name)
            continue
        done = int(status.split()[-1])
        if row["action"] == "reinsert":
            reinserted += done
        else:
            written_back += done
    return Applied(reinserted, written_back, found)
