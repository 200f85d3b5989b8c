"""Keys, indexes and triggers set aside while a bulk load fills tables, then built back.

Loading into bare tables and building each index once afterwards (one sort) is several times
faster than maintaining every index row by row, and a foreign key added afterwards is checked by
one join instead of one lookup per row. The definitions come from the live catalog
(pg_get_constraintdef, pg_get_indexdef) of the schema the caller built, never from the
repository.

The pieces are shaped so that several connections can build them at once without waiting on
each other's locks: every index, the indexes of primary keys and unique constraints included, is
one CREATE INDEX (a SHARE lock, which other index builds on the same table share); the keys are
then attached to their built indexes (USING INDEX: a catalog change, no scan) and the foreign keys
added NOT VALID in one short transaction; each VALIDATE then reads its table under a lock that
only another VALIDATE of the same table waits for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from backup.restore.predicate_sql import quote_identifier

_CONSTRAINTS = """
SELECT c.conrelid::regclass::text AS owner, c.conname AS name, c.contype::text AS kind,
       pg_get_constraintdef(c.oid) AS definition, c.condeferrable AS deferrable,
       c.condeferred AS deferred, i.relname AS index_name,
       CASE WHEN c.contype IN ('p', 'u') THEN pg_get_indexdef(c.conindid) END AS index_definition
FROM pg_constraint c LEFT JOIN pg_class i ON i.oid = c.conindid
WHERE c.contype IN ('p', 'u', 'x', 'f')
  AND (c.conrelid = ANY($1::text[]::regclass[])
       OR (c.contype = 'f' AND c.confrelid = ANY($1::text[]::regclass[])))
ORDER BY 1, 2
"""

# Indexes that back no key (a key's index goes and comes back with its constraint).
_INDEXES = """
SELECT i.indrelid::regclass::text AS owner, i.indexrelid::regclass::text AS name,
       pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
WHERE i.indrelid = ANY($1::text[]::regclass[])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                  WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))
ORDER BY 1, 2
"""

# User triggers that fire now; a trigger disabled on purpose stays as it was.
_TRIGGERS = """
SELECT t.tgrelid::regclass::text AS owner, t.tgname AS name, t.tgenabled::text AS state
FROM pg_trigger t
WHERE t.tgrelid = ANY($1::text[]::regclass[]) AND NOT t.tgisinternal AND t.tgenabled <> 'D'
ORDER BY 1, 2
"""

_ENABLE = {"O": "ENABLE", "A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}


@dataclass(frozen=True)
class Build:
    """One statement that builds an index (or a key that cannot be attached) of one table."""

    table: str       # as the caller spelled it to set_aside
    name: str
    statement: str
    primary: bool    # the primary key's index: a replay's upserts need it before the rest


@dataclass(frozen=True)
class ForeignKey:
    owner: str       # the referencing table
    name: str
    add: str                # ADD ... NOT VALID: no scan
    validate: str | None    # the one scan that proves every row has its parent (None: it was
                            # NOT VALID in the schema the caller built, and stays so)


@dataclass(frozen=True)
class SetAside:
    builds: tuple[Build, ...]
    attach: tuple[str, ...]               # primary and unique keys onto their built indexes
    foreign_keys: tuple[ForeignKey, ...]
    disable: tuple[str, ...]              # user triggers, so nothing fires on the loaded rows
    enable: tuple[str, ...]               # ... and back as each was

    @property
    def count(self) -> int:
        """Keys and indexes set aside and built back."""
        return len(self.builds) + len(self.foreign_keys)

    def of(self, table: str) -> tuple[Build, ...]:
        return tuple(b for b in self.builds if b.table == table)


def _key_pieces(row: asyncpg.Record, table: str) -> tuple[Build, str | None]:
    """A primary or unique key as (index build, attach) or, when its index cannot be attached
    as it was (an exclusion constraint, a renamed index), one ADD CONSTRAINT and no attach."""
    owner, name = row["owner"], quote_identifier(row["name"])
    primary = row["kind"] == "p"
    if row["kind"] in ("p", "u") and row["index_name"] == row["name"] and row["index_definition"]:
        clause = "PRIMARY KEY" if primary else "UNIQUE"
        timing = ((" DEFERRABLE" if row["deferrable"] else "")
                  + (" INITIALLY DEFERRED" if row["deferred"] else ""))
        return (Build(table, row["name"], row["index_definition"], primary),
                f"ALTER TABLE {owner} ADD CONSTRAINT {name} {clause} USING INDEX {name}{timing}")
    return Build(table, row["name"], f"ALTER TABLE {owner} ADD CONSTRAINT {name} {row['definition']}",
                 primary), None


def _foreign_key(row: asyncpg.Record) -> ForeignKey:
    owner, name, definition = row["owner"], quote_identifier(row["name"]), row["definition"]
    valid = not definition.endswith(" NOT VALID")
    add = f"ALTER TABLE {owner} ADD CONSTRAINT {name} {definition}" + (" NOT VALID" if valid else "")
    return ForeignKey(owner, row["name"], add,
                      f"ALTER TABLE {owner} VALIDATE CONSTRAINT {name}" if valid else None)


async def set_aside(conn: asyncpg.Connection, tables: Sequence[str]) -> SetAside:
    """Drop the keys and indexes of `tables` (quoted, qualified names) and the foreign keys that
    touch them, and disable their user triggers; return how to build it all back."""
    constraints = await conn.fetch(_CONSTRAINTS, list(tables))
    indexes = await conn.fetch(_INDEXES, list(tables))
    triggers = await conn.fetch(_TRIGGERS, list(tables))
    # The catalog names a table as regclass text (unqualified on the search path); Build.table
    # is the caller's spelling, which SetAside.of answers in.
    spelled = dict(await conn.fetch("SELECT t::regclass::text, t FROM unnest($1::text[]) t", list(tables)))
    keys = [_key_pieces(r, spelled[r["owner"]]) for r in constraints if r["kind"] in ("p", "u", "x")]
    foreign = [r for r in constraints if r["kind"] == "f"]
    aside = SetAside(
        builds=tuple(build for build, _ in keys)
        + tuple(Build(spelled[r["owner"]], r["name"], r["definition"], False) for r in indexes),
        attach=tuple(attach for _, attach in keys if attach is not None),
        foreign_keys=tuple(_foreign_key(r) for r in foreign),
        disable=tuple(f"ALTER TABLE {r['owner']} DISABLE TRIGGER {quote_identifier(r['name'])}"
                      for r in triggers),
        enable=tuple(f"ALTER TABLE {r['owner']} {_ENABLE[r['state']]} TRIGGER {quote_identifier(r['name'])}"
                     for r in triggers),
    )
    # Foreign keys first: they depend on the keys they reference.
    drops = [f"ALTER TABLE {r['owner']} DROP CONSTRAINT {quote_identifier(r['name'])}"
             for r in (*foreign, *(r for r in constraints if r["kind"] != "f"))]
    drops += [f"DROP INDEX {r['name']}" for r in indexes]
    for statement in (*drops, *aside.disable):
        await conn.execute(statement)
    return aside
