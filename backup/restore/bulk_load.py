"""Keys, indexes and triggers set aside while a bulk load fills tables, then built back.

Loading into bare tables and building each index once afterwards (one sort, with parallel
workers) is several times faster than maintaining every index row by row, and a foreign key
added afterwards is checked by one join instead of one lookup per row. The definitions come
from the live catalog (pg_get_constraintdef, pg_get_indexdef) of the schema the caller built,
never from the repository. Everything runs in the caller's transaction, so a failure leaves
nothing half-built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from backup.restore.predicate_sql import quote_identifier

_CONSTRAINTS = """
SELECT c.conrelid::regclass::text AS owner, c.conname AS name, c.contype::text AS kind,
       pg_get_constraintdef(c.oid) AS definition
FROM pg_constraint c
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
class Definition:
    """One object set aside: how to drop it and how to build it back."""

    owner: str  # the table, as regclass text (quoted where needed)
    name: str
    drop: str
    create: str


@dataclass(frozen=True)
class SetAside:
    primary_keys: tuple[Definition, ...]
    secondary: tuple[Definition, ...]     # unique and exclusion constraints, plain indexes
    foreign_keys: tuple[Definition, ...]
    triggers: tuple[Definition, ...]      # drop = DISABLE, create = ENABLE as it was

    @property
    def count(self) -> int:
        return len(self.primary_keys) + len(self.secondary) + len(self.foreign_keys)


def _constraint(row: asyncpg.Record) -> Definition:
    name = quote_identifier(row["name"])
    return Definition(row["owner"], row["name"], f"ALTER TABLE {row['owner']} DROP CONSTRAINT {name}",
                      f"ALTER TABLE {row['owner']} ADD CONSTRAINT {name} {row['definition']}")


async def set_aside(conn: asyncpg.Connection, tables: Sequence[str]) -> SetAside:
    """Drop the keys and indexes of `tables` (quoted, qualified names) and the foreign keys that
    touch them, and disable their user triggers; return what `build_back_*` needs to undo it."""
    constraints = await conn.fetch(_CONSTRAINTS, list(tables))
    indexes = await conn.fetch(_INDEXES, list(tables))
    triggers = await conn.fetch(_TRIGGERS, list(tables))
    aside = SetAside(
        primary_keys=tuple(_constraint(r) for r in constraints if r["kind"] == "p"),
        secondary=tuple(_constraint(r) for r in constraints if r["kind"] in ("u", "x"))
        + tuple(Definition(r["owner"], r["name"], f"DROP INDEX {r['name']}", r["definition"])
                for r in indexes),
        foreign_keys=tuple(_constraint(r) for r in constraints if r["kind"] == "f"),
        triggers=tuple(Definition(r["owner"], r["name"],
                                  f"ALTER TABLE {r['owner']} DISABLE TRIGGER {quote_identifier(r['name'])}",
                                  f"ALTER TABLE {r['owner']} {_ENABLE[r['state']]} TRIGGER "
                                  f"{quote_identifier(r['name'])}") for r in triggers),
    )
    # Foreign keys first: they depend on the keys they reference.
    for definition in (*aside.foreign_keys, *aside.secondary, *aside.primary_keys, *aside.triggers):
        await conn.execute(definition.drop)
    return aside


async def build_back_primary_keys(conn: asyncpg.Connection, aside: SetAside) -> None:
    """Rebuild the primary keys (a replay's upserts need them); a duplicate key raises here."""
    for definition in aside.primary_keys:
        await conn.execute(definition.create)


async def build_back_rest(conn: asyncpg.Connection, aside: SetAside) -> None:
    """Rebuild unique keys and indexes, then check and add the foreign keys, then re-enable the
    triggers, so nothing fires on the loaded rows."""
    for definition in (*aside.secondary, *aside.foreign_keys, *aside.triggers):
        await conn.execute(definition.create)
