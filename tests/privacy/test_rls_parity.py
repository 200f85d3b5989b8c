"""RLS alone says what the Python scope says, for every statement kind and every role.

The oracle is the Python side: api/domain/scope.py's conditions (evaluated as the owner, no
RLS) and the write rules of api/domain/registration.py and vaccination.py (staff write only at
their own center, and dose only recipients their center may see). The subject is the API role
with the principal set and no WHERE clause of ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import pytest

from api.domain.conditions import Conditions
from api.domain.scope import doses_in_scope, recipients_in_scope
from api.policy import ROOTS
from api.principal import Principal, Role
from backup.capture.triggers import install
from tests.api.conftest import Cast
from tests.api.test_row_security import as_api


async def _python_ids(owner: asyncpg.Connection, table: str, who: Principal) -> set[int]:
    where = Conditions()
    alias = "r" if table == "recipients" else "d"
    (recipients_in_scope if table == "recipients" else doses_in_scope)(where, who)
    rows = await owner.fetch(f"SELECT {alias}.id FROM {table} {alias} {where.where()}",
                             *where.args)
    return {r["id"] for r in rows}


@dataclass(frozen=True)
class Write:
    name: str
    sql: str
    args: tuple[object, ...]
    python_allows: bool


async def _writes(owner: asyncpg.Connection, cast: Cast, who: Principal) -> list[Write]:
    """Each write kind, aimed inside and outside the scope, with what Python would decide."""
    role = who.role
    own = cast.center_id
    other = await owner.fetchval("SELECT min(id) FROM centers WHERE id <> $1", own)
    visible = await _python_ids(owner, "recipients", Principal(Role.CENTER_STAFF, "n",
                                                               center_id=own))
    inside = min(visible)
    outside = await owner.fetchval("SELECT min(id) FROM recipients WHERE NOT id = ANY($1)",
                                   list(visible))
    own_dose = await owner.fetchval("SELECT min(id) FROM doses WHERE center_id = $1", own)
    foreign_dose = await owner.fetchval(
        "SELECT min(id) FROM doses WHERE center_id <> $1 AND recipient_id = ANY($2)", own,
        list(visible))
    admin = role is Role.ADMIN
    staff = role is Role.CENTER_STAFF
    registers = role in ROOTS["registerRecipient"]
    doses = role in ROOTS["recordDose"]
    insert_recipient = ("INSERT INTO recipients (national_id, full_name, birth_date, sex, "
                        "district_id, center_id) VALUES ('5550001112', 'Test', '1990-01-01', "
                        "'male', 1, $1)")
    insert_dose = ("INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number, "
                   "administered_on, center_id, recorded_by) VALUES ($1, 6, "
                   "(SELECT min(code) FROM vaccines), 'L-1', current_date, $2, 't')")
    return [
        Write("register at own center", insert_recipient, (own,), registers),
        Write("register at another center", insert_recipient, (other,), admin),
        Write("dose a visible recipient here", insert_dose, (inside, own), doses),
        Write("dose an unseen recipient here", insert_dose, (outside, own), admin),
        Write("dose a visible recipient elsewhere", insert_dose, (inside, other), admin),
        Write("update a recipient", "UPDATE recipients SET full_name = full_name || '' "
              "WHERE id = $1", (inside,), admin),
        Write("correct a dose given here", "UPDATE doses SET lot_number = 'FIX' WHERE id = $1",
              (own_dose,), admin or staff),
        Write("correct a dose given elsewhere", "UPDATE doses SET lot_number = 'FIX' "
              "WHERE id = $1", (foreign_dose,), admin),
        Write("move a dose given here elsewhere", "UPDATE doses SET center_id = $2 "
              "WHERE id = $1", (own_dose, other), admin),
    ]


async def _rls_allows(conn: asyncpg.Connection, write: Write) -> bool:
    try:
        async with conn.transaction():
            status = await conn.execute(write.sql, *write.args)
            raise _Undo(status)
    except _Undo as undo:
        return not undo.status.endswith(" 0")
    except asyncpg.InsufficientPrivilegeError:
        return False


class _Undo(Exception):
    def __init__(self, status: str) -> None:
        self.status = status


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
async def test_rls_alone_matches_python_scope_for_every_statement_kind(
        owner: asyncpg.Connection, cast: Cast, role: Role) -> None:
    who = cast.of(role)
    expected = {table: await _python_ids(owner, table, who) for table in ("recipients", "doses")}
    writes = await _writes(owner, cast, who)
    async with as_api(owner, role.value, who.sub or "", center_id=who.center_id,
                      district_id=who.district_id) as conn:
        for table in ("recipients", "doses"):
            seen = {r["id"] for r in await conn.fetch(f"SELECT id FROM {table}")}
            assert seen == expected[table], (role, "SELECT", table)
        decided = {w.name: await _rls_allows(conn, w) for w in writes}
    assert decided == {w.name: w.python_allows for w in writes}


async def test_rls_refuses_the_dose_that_would_make_a_stranger_readable(
        owner: asyncpg.Connection, cast: Cast) -> None:
    staff = cast.staff
    writes = {w.name: w for w in await _writes(owner, cast, staff)}
    stranger = writes["dose an unseen recipient here"]
    async with as_api(owner, "center_staff", "nurse-1", center_id=cast.center_id) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with conn.transaction():
                await conn.execute(stranger.sql, *stranger.args)
        assert await conn.fetchval("SELECT count(*) FROM recipients WHERE id = $1",
                                   stranger.args[0]) == 0


async def test_every_security_definer_function_searches_pg_temp_last(
        owner: asyncpg.Connection) -> None:
    await install(owner)  # the change-capture functions too
    rows = await owner.fetch(
        "SELECT p.oid::regprocedure::text AS name, p.proconfig FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')")
    assert len(rows) >= 4
    for row in rows:
        paths = [c for c in row["proconfig"] or [] if c.startswith("search_path=")]
        assert paths, f"{row['name']} has no fixed search_path"
        assert paths[0].replace(" ", "").endswith(",pg_temp"), (row["name"], paths[0])
