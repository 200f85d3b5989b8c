"""Keys, indexes and triggers set aside while a bulk load fills tables, then built back.

Loading into bare tables and building each index once afterwards (one sort) is several times
faster than maintaining every index row by row, and a foreign key added afterwards is checked by
one join instead of one lookup per row. The definitions come from the live catalog
(pg_get_constraintdef, pg_get_indexdef) of the schema the caller built, never from the
repository.

The pieces are shaped so that several connections can build them at once without waiting on
each other's locks: every index, the indexes of primary keys and unique constraints included, is
one CREATE INDEX (a SHARE lock, which other index builds on the same table share); the foreign
keys are added NOT VALID (no scan) as soon as the indexes they reference exist, then each
VALIDATE reads its table under a lock that index builds of other tables do not wait for; last,
the keys are attached to their built indexes (USING INDEX: a catalog change, no scan).
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
       pg_get_indexdef(i.indexrelid) AS definition, c.relname AS index_name
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
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


PRIMARY, REFERENCED, REST = "primary", "referenced", "rest"


@dataclass(frozen=True)
class Build:
    """One statement that builds an index (or a key that cannot be attached) of one table."""

    table: str       # as the caller spelled it to set_aside
    name: str
    statement: str
    # PRIMARY: a replay's upserts need it; REFERENCED: a foreign key needs it (built after the
    # replay, so a replayed swap of two values never trips it); REST: nothing waits for it.
    stage: str


@dataclass(frozen=True)
class ForeignKey:
    owner: str       # the referencing table, as regclass text
    table: str | None  # ... as the caller spelled it (None: not one of the tables set aside)
    name: str
    add: str                # ADD ... NOT VALID: no scan
    validate: str | None    # the one scan that proves every row has its parent (None: it was
                            # NOT VALID in the schema the caller built, and stays so)


@dataclass(frozen=True)
class SetAside:
    builds: tuple[Build, ...]
    attach: tuple[str, ...]               # primary and unique keys onto their built indexes (last)
    foreign_keys: tuple[ForeignKey, ...]
    disable: tuple[str, ...]              # user triggers, so nothing fires on the loaded rows
    enable: tuple[str, ...]               # ... and back as each was

    @property
    def count(self) -> int:
        """Keys and indexes set aside and built back."""
        return len(self.builds) + len(self.foreign_keys)

    def of(self, table: str) -> tuple[Build, ...]:
        return tuple(b for b in self.builds if b.table == table)


def _stage(kind: str, index_name: str, referenced: set[str]) -> str:
    if kind == "p":
        return PRIMARY
    return REFERENCED if index_name in referenced else REST


def _key_pieces(row: asyncpg.Record, table: str, stage: str) -> tuple[Build, str | None]:
    """A primary or unique key as (index build, attach) or, when its index cannot be attached
    as it was (an exclusion constraint, a renamed index), one ADD CONSTRAINT and no attach."""
    owner, name = row["owner"], quote_identifier(row["name"])
    if row["kind"] in ("p", "u") and row["index_name"] == row["name"] and row["index_definition"]:
        clause = "PRIMARY KEY" if row["kind"] == "p" else "UNIQUE"
        timing = ((" DEFERRABLE" if row["deferrable"] else "")
                  + (" INITIALLY DEFERRED" if row["deferred"] else ""))
        return (Build(table, row["name"], row["index_definition"], stage),
                f"ALTER TABLE {owner} ADD CONSTRAINT {name} {clause} USING INDEX {name}{timing}")
    return Build(table, row["name"], f"ALTER TABLE {owner} ADD CONSTRAINT {name} {row['definition']}",
                 stage), None


def _foreign_key(row: asyncpg.Record, table: str | None) -> ForeignKey:
    owner, name, definition = row["owner"], quote_identifier(row["name"]), row["definition"]
    valid = not definition.endswith(" NOT VALID")
    add = f"ALTER TABLE {owner} ADD CONSTRAINT {name} {definition}" + (" NOT VALID" if valid else "")
    return ForeignKey(owner, table, row["name"], add,
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
    foreign = [r for r in constraints if r["kind"] == "f"]
    referenced = {r["index_name"] for r in foreign}  # a foreign key's index is the one it references
    keys = [_key_pieces(r, spelled[r["owner"]], _stage(r["kind"], r["index_name"], referenced))
            for r in constraints if r["kind"] in ("p", "u", "x")]
    aside = SetAside(
        builds=tuple(build for build, _ in keys)
        + tuple(Build(spelled[r["owner"]], r["name"], r["definition"],
                      _stage("i", r["index_name"], referenced)) for r in indexes),
        attach=tuple(attach for _, attach in keys if attach is not None),
        foreign_keys=tuple(_foreign_key(r, spelled.get(r["owner"])) for r in foreign),
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
