"""README promises about every request: the audit row or no response, the statement timeout,
the parse/validation caches, and row security over doses and the audit log for every role."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from strawberry.extensions.parser_cache import _get_parse_cache
from strawberry.extensions.validation_cache import _get_validate_cache

from api.db.pool import create_pool
from api.policy import ROW_SCOPES, RowScope
from api.principal import Role
from api.schema import CACHE_SIZE
from tests.api.client import run
from tests.api.conftest import Cast
from tests.api.test_row_scope import CENTER_RECIPIENTS
from tests.api.test_row_security import as_api

PERSONAL_READ = "{ recipients(first: 3) { edges { node { id fullName } } } }"


async def _audit_rows(owner: asyncpg.Connection) -> int:
    return int(await owner.fetchval("SELECT count(*) FROM audit_log"))


async def test_a_response_is_withheld_when_its_audit_row_cannot_be_committed(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    before = await _audit_rows(owner)
    served = await run(pool, seeded_settings, cast.staff, PERSONAL_READ)
    assert served.data is not None and served.data["recipients"]["edges"], served.errors
    assert await _audit_rows(owner) == before + 1, "the control: a read is audited"
    # The audit log refuses every new row (a full disk, a broken trigger, a lost connection).
    await owner.execute("""CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$""")
    await owner.execute("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
                        "FOR EACH ROW EXECUTE FUNCTION refuse_audit()")
    withheld = await run(pool, seeded_settings, cast.staff, PERSONAL_READ)
    assert withheld.data is None
    assert [e["extensions"]["code"] for e in withheld.errors] == ["INTERNAL_SERVER_ERROR"]
    assert "no data is returned" in withheld.errors[0]["message"]
    assert await _audit_rows(owner) == before + 1


async def test_a_statement_is_cancelled_after_the_statement_timeout(
        seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    settings = seeded_settings.with_overrides(statement_timeout_ms=200)
    pool = await create_pool(settings)
    blocker = owner
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE recipients IN ACCESS EXCLUSIVE MODE")
            # The lock is held until the block ends: only the timeout can end the request.
            async with asyncio.timeout(60):  # a bound on a hang, not a measurement
                result = await run(pool, settings, cast.staff, PERSONAL_READ)
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
    finally:
        await pool.close()
    assert result.data is None or result.data["recipients"] is None
    assert result.errors and all(e["message"] for e in result.errors)
    assert waiting == 0, "the statement was cancelled on the server, not only abandoned"


async def test_repeated_queries_are_parsed_and_validated_once(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast) -> None:
    parse, validate = _get_parse_cache(CACHE_SIZE), _get_validate_cache(CACHE_SIZE)
    query = f"{{ {'q' + uuid.uuid4().hex}: districts {{ id }} }}"  # a text never seen before
    parsed, validated = parse.cache_info(), validate.cache_info()
    first = await run(pool, seeded_settings, cast.admin, query)
    after_first = parse.cache_info(), validate.cache_info()
    second = await run(pool, seeded_settings, cast.staff, query)
    after_second = parse.cache_info(), validate.cache_info()
    assert first.data == second.data and not first.errors and len(first.data or {}) == 1
    assert (after_first[0].misses - parsed.misses, after_first[1].misses - validated.misses) == (1, 1)
    assert (after_second[0].hits - after_first[0].hits,
            after_second[1].hits - after_first[1].hits) == (1, 1)
    assert (after_second[0].misses, after_second[1].misses) == (after_first[0].misses,
                                                                after_first[1].misses)


async def _expected_doses(owner: asyncpg.Connection, role: Role, cast: Cast) -> set[int]:
    """Dose rows a role may read, straight from the table (DESIGN: 'of visible recipients')."""
    scope = ROW_SCOPES[role].recipients
    if scope is RowScope.ALL:
        rows = await owner.fetch("SELECT id FROM doses")
    elif scope is RowScope.CENTER:
        rows = await owner.fetch(f"SELECT id FROM doses WHERE recipient_id IN ({CENTER_RECIPIENTS})",
                                 cast.center_id)
    elif scope is RowScope.SELF:
        rows = await owner.fetch("SELECT id FROM doses WHERE recipient_id = $1", cast.recipient_id)
    else:
        rows = []
    return {row["id"] for row in rows}


# Who may read which audit rows (DESIGN: auditLog all for admin and auditor; a recipient sees
# who read their data; nobody else any).
AUDIT_SCOPE = {Role.ADMIN: "all", Role.AUDITOR: "all", Role.RECIPIENT: "self"}


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
async def test_rls_over_doses_and_the_audit_log_matches_the_design(
        owner: asyncpg.Connection, cast: Cast, role: Role) -> None:
    # Audit rows about the cast's recipient and about someone else, so every scope holds rows.
    other = await owner.fetchval("SELECT min(id) FROM recipients WHERE id <> $1", cast.recipient_id)
    for about in (cast.recipient_id, other):
        await owner.execute("INSERT INTO audit_log (actor_sub, actor_role, action, recipient_ids) "
                            "VALUES ('admin-1', 'admin', 'read', ARRAY[$1::bigint])", about)
    everyone = {row["id"] for row in await owner.fetch("SELECT id FROM audit_log")}
    about_self = {row["id"] for row in await owner.fetch(
        "SELECT id FROM audit_log WHERE $1 = ANY(recipient_ids)", cast.recipient_id)}
    expected_audit = {"all": everyone, "self": about_self}.get(AUDIT_SCOPE.get(role, ""), set())
    expected_doses = await _expected_doses(owner, role, cast)
    who = cast.of(role)
    async with as_api(owner, role.value, who.sub or "", center_id=who.center_id,
                      district_id=who.district_id) as conn:
        assert {r["id"] for r in await conn.fetch("SELECT id FROM doses")} == expected_doses
        assert {r["id"] for r in await conn.fetch("SELECT id FROM audit_log")} == expected_audit
    assert len(everyone) >= 2 and about_self and about_self != everyone
