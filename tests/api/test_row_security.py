"""RLS alone: queries without any WHERE clause, as the API role with a principal set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from api.db.pool import API_ROLE
from api.policy import ROW_SCOPES, RowScope
from api.principal import Role
from tests.api.conftest import Cast
from tests.api.test_row_scope import CENTER_RECIPIENTS


@asynccontextmanager
async def as_api(conn: asyncpg.Connection, role: str, sub: str = "", center_id: int | None = None,
                 district_id: int | None = None) -> AsyncIterator[asyncpg.Connection]:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {API_ROLE}")
        await conn.execute(
            "SELECT set_config('vaxvault.role', $1, true), set_config('vaxvault.sub', $2, true), "
            "set_config('vaxvault.center_id', $3, true), "
            "set_config('vaxvault.district_id', $4, true)",
            role, sub, "" if center_id is None else str(center_id),
            "" if district_id is None else str(district_id))
        yield conn


async def _ids(conn: asyncpg.Connection, table: str) -> set[int]:
    return {row["id"] for row in await conn.fetch(f"SELECT id FROM {table}")}


async def test_rls_alone_limits_center_staff(owner: asyncpg.Connection, cast: Cast) -> None:
    expected = {row["id"] for row in await owner.fetch(CENTER_RECIPIENTS, cast.center_id)}
    expected_doses = {row["id"] for row in await owner.fetch(
        "SELECT id FROM doses WHERE recipient_id = ANY($1)", list(expected))}
    async with as_api(owner, "center_staff", "nurse-1", center_id=cast.center_id) as conn:
        assert await _ids(conn, "recipients") == expected
        assert await _ids(conn, "doses") == expected_doses
        assert await _ids(conn, "audit_log") == set()


async def test_rls_alone_limits_a_recipient_to_self(owner: asyncpg.Connection, cast: Cast) -> None:
    async with as_api(owner, "recipient", str(cast.recipient_id)) as conn:
        assert await _ids(conn, "recipients") == {cast.recipient_id}
        assert await conn.fetchval("SELECT count(DISTINCT recipient_id) FROM doses") == 1


async def _expected_recipients(owner: asyncpg.Connection, scope: RowScope, cast: Cast) -> set[int]:
    if scope is RowScope.ALL:
        return {row["id"] for row in await owner.fetch("SELECT id FROM recipients")}
    if scope is RowScope.CENTER:
        return {row["id"] for row in await owner.fetch(CENTER_RECIPIENTS, cast.center_id)}
    if scope is RowScope.SELF:
        return {cast.recipient_id}
    return set()


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
async def test_rls_matches_the_policy_row_scopes(owner: asyncpg.Connection, cast: Cast,
                                                 role: Role) -> None:
    """The RLS policies and api.policy.ROW_SCOPES say the same, role by role."""
    expected = await _expected_recipients(owner, ROW_SCOPES[role].recipients, cast)
    expected_doses = {row["id"] for row in await owner.fetch(
        "SELECT id FROM doses WHERE recipient_id = ANY($1)", list(expected))}
    who = cast.of(role)
    async with as_api(owner, role.value, who.sub or "", center_id=who.center_id,
                      district_id=who.district_id) as conn:
        assert await _ids(conn, "recipients") == expected
        assert await _ids(conn, "doses") == expected_doses


@pytest.mark.parametrize("role", ["", "superuser", "ADMIN"])
async def test_rls_shows_nothing_to_an_unknown_or_missing_role(owner: asyncpg.Connection,
                                                               role: str) -> None:
    async with as_api(owner, role, "someone", district_id=1) as conn:
        assert await _ids(conn, "recipients") == set()
        assert await _ids(conn, "doses") == set()


async def test_rls_alone_refuses_writes_outside_scope(owner: asyncpg.Connection, cast: Cast) -> None:
    other = 1 if cast.center_id != 1 else 2
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with as_api(owner, "center_staff", "nurse-1", center_id=cast.center_id) as conn:
            await conn.execute(
                "INSERT INTO recipients (national_id, full_name, birth_date, sex, district_id, "
                "center_id) VALUES ('1234567890', 'X', '1990-01-01', 'male', 1, $1)", other)
    async with as_api(owner, "auditor", "a-1") as conn:
        assert await conn.execute("UPDATE doses SET lot_number = 'X'") == "UPDATE 0"


async def test_the_api_role_cannot_rewrite_or_forge_audit_entries(owner: asyncpg.Connection) -> None:
    async with as_api(owner, "admin", "admin-1") as conn:
        await conn.execute("INSERT INTO audit_log (actor_sub, actor_role, action) "
                           "VALUES ('admin-1', 'admin', 'read')")
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with as_api(owner, "admin", "admin-1") as conn:
                await conn.execute(statement)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with as_api(owner, "center_staff", "nurse-1", center_id=1) as conn:
            await conn.execute("INSERT INTO audit_log (actor_sub, actor_role, action) "
                               "VALUES ('admin-1', 'admin', 'read')")


async def test_the_center_dosed_view_shows_only_center_staff_their_own_centers_doses(
        owner: asyncpg.Connection, cast: Cast) -> None:
    """recipients_read asks vaxvault_center_dosed (migration 0030), which reads doses as their
    owner: it must show no more than doses_read shows the same principal."""
    given_here = {r["recipient_id"] for r in await owner.fetch(
        "SELECT recipient_id FROM doses WHERE center_id = $1", cast.center_id)}
    async with as_api(owner, "center_staff", "nurse-1", center_id=cast.center_id) as conn:
        seen = {r["recipient_id"] for r in await conn.fetch(
            "SELECT recipient_id FROM vaxvault_center_dosed")}
        assert seen == given_here
        readable = {r["recipient_id"] for r in await conn.fetch(
            "SELECT recipient_id FROM doses WHERE center_id = $1", cast.center_id)}
        assert seen <= readable
    for role, sub in (("admin", "admin-1"), ("recipient", str(cast.recipient_id)),
                      ("district_officer", "officer-1"), ("", "")):
        async with as_api(owner, role, sub, center_id=cast.center_id,
                          district_id=cast.district_id) as conn:
            assert await conn.fetchval("SELECT count(*) FROM vaxvault_center_dosed") == 0
    async with as_api(owner, "center_staff", "nurse-1") as conn:  # no center claim
        assert await conn.fetchval("SELECT count(*) FROM vaxvault_center_dosed") == 0


async def test_a_callers_function_sees_no_dose_the_center_dosed_view_hides(
        owner: asyncpg.Connection, cast: Cast) -> None:
    """The view reads past doses' RLS (migration 0030); it is a security barrier (0033), so a
    function in the caller's WHERE clause runs only on the rows the view shows, not on every
    dose below it. A sequential scan is what an adversary would ask for: the center's index
    would filter the rows before any function saw them."""
    seen: list[str] = []
    owner.add_log_listener(lambda _conn, message: seen.append(message.message))
    rollback = owner.transaction()
    await rollback.start()
    try:
        await owner.execute(
            "CREATE FUNCTION pg_temp.vaxvault_leak(bigint) RETURNS boolean LANGUAGE plpgsql COST 0.0001 "
            "AS $$ BEGIN RAISE NOTICE '%', $1; RETURN true; END $$")
        async with as_api(owner, "center_staff", "nurse-1", center_id=cast.center_id) as conn:
            await conn.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off")
            await conn.fetch("SELECT recipient_id FROM vaxvault_center_dosed "
                             "WHERE pg_temp.vaxvault_leak(recipient_id)")
    finally:
        await rollback.rollback()
    assert seen, "the function was never called: the test shows nothing"
    given_here = {r["recipient_id"] for r in await owner.fetch(
        "SELECT recipient_id FROM doses WHERE center_id = $1", cast.center_id)}
    assert {int(message) for message in seen} - given_here == set()
