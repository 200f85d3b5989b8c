"""Round trips of the compiled path, counted on the wire, and the path served over real HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.auth import mint_token
from api.db.pool import API_ROLE
from api.principal import Role
from api.settings import Settings
from tests.api.client import run
from tests.api.compiled_paths import COMPILER
from tests.api.conftest import Cast
from tests.conftest import JWT_SECRET
from tests.live_server import live_server

RECIPIENT = """query RecipientWithDoses($id: ID!) { recipient(id: $id) {
  id nationalId fullName birthDate sex phone district { id name } registeredAt
  doses { id doseNumber lotNumber administeredOn nextDueOn center { id name } } } }"""
LISTING = """query Listing($first: Int) { recipients(first: $first) { edges { node {
  id fullName nationalId district { name } registeredAt
  doses { id doseNumber administeredOn vaccine { code name } center { id name } nextDueOn
          recipient { id phone } } } } } }"""


async def test_a_compiled_read_is_a_read_and_its_audit_commit_whatever_its_size(
        counted_pool: tuple[asyncpg.Pool, list[str]], seeded_settings: Any, cast: Cast,
        owner: asyncpg.Connection) -> None:
    pool, statements = counted_pool
    cases = [(RECIPIENT, {"id": str(cast.recipient_id)}), (LISTING, {"first": 5}),
             (LISTING, {"first": 100})]
    for principal in (cast.admin, cast.staff):
        for query, variables in cases:
            statements.clear()
            request_id = uuid.uuid4().hex
            answer = await COMPILER.answer(pool, principal, request_id, query, None, variables)
            assert answer is not None
            assert "errors" not in json.loads(answer.body)
            # Two statements, each committed by itself: principal (transaction-local),
            # freezes and the read, which builds the audit row; then that row's INSERT (shared
            # by the reads that finish meanwhile, see below). The release sends nothing (no
            # RESET ALL).
            assert [s.split()[0].upper() for s in statements] == ["WITH", "INSERT"], statements
            for setting in ("role", "sub", "center_id", "district_id"):
                assert f"set_config('vaxvault.{setting}', " in statements[0]
            assert "set_config('vaxvault.role', $1, true)" in statements[0]
            assert "INSERT" not in statements[0]
            assert statements[1].startswith("INSERT INTO audit_log")
            # The answer came only after its audit row was committed.
            assert await owner.fetchval(
                "SELECT count(*) FROM audit_log WHERE request_id = $1", request_id) == 1
            # The principal ended with the statement's transaction.
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT current_setting('vaxvault.role', true)") == ""
            statements.clear()
            await run(pool, seeded_settings, principal, query, variables)
            strawberry_round_trips = len(statements)
            # BEGIN, principal, reads, audit INSERT, COMMIT, RESET ALL.
            assert strawberry_round_trips >= 7, statements
            assert "RESET ALL" in statements[-1]


async def test_concurrent_reads_share_an_audit_commit_and_each_row_keeps_its_principal(
        counted_pool: tuple[asyncpg.Pool, list[str]], cast: Cast,
        owner: asyncpg.Connection) -> None:
    """Group commit: reads that finish while a commit is under way are committed together by
    the next one, each row in its reader's name (the append policy checks each row)."""
    pool, statements = counted_pool
    readers = [cast.admin, cast.staff, cast.recipient] * 4
    variables = {"id": str(cast.recipient_id)}
    answers = await asyncio.gather(*[
        COMPILER.answer(pool, p, f"group-{i}", RECIPIENT, None, variables)
        for i, p in enumerate(readers)])
    assert all(a is not None and "errors" not in json.loads(a.body) for a in answers)
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert 1 <= len(inserts) < len(readers), statements
    rows = await owner.fetch("SELECT request_id, actor_role, actor_sub, actor_center_id, "
                             "recipient_ids FROM audit_log WHERE request_id LIKE 'group-%'")
    assert sorted((r["request_id"], r["actor_role"], r["actor_sub"], r["actor_center_id"],
                   r["recipient_ids"]) for r in rows) == sorted(
        (f"group-{i}", p.role.value, p.sub, p.center_id, [cast.recipient_id])
        for i, p in enumerate(readers))


async def test_no_answer_without_its_committed_audit_row(
        counted_pool: tuple[asyncpg.Pool, list[str]], cast: Cast,
        owner: asyncpg.Connection) -> None:
    """When the audit row cannot be committed the read does not answer (the HTTP path then
    hands the request to strawberry, which fails the same way without its audit row)."""
    pool, _ = counted_pool
    await owner.execute(f"REVOKE INSERT ON audit_log FROM {API_ROLE}")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await COMPILER.answer(pool, cast.admin, "refused", RECIPIENT, None,
                              {"id": str(cast.recipient_id)})
    # A read that reveals nothing personal needs no audit row and still answers.
    answer = await COMPILER.answer(pool, cast.admin, "plain", "{ recipient(id: \"1\") { id } }",
                                   None, {})
    assert answer is not None and json.loads(answer.body)["data"]["recipient"] == {"id": "1"}
    await owner.execute(f"GRANT INSERT ON audit_log TO {API_ROLE}")
    assert await owner.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_each_root_reads_under_the_principal_its_statement_set(
        counted_pool: tuple[asyncpg.Pool, list[str]], cast: Cast) -> None:
    """The roots run after the principal is set in the same statement: RLS sees the staff (a
    root that ran first would see no principal and find nothing), then nobody."""
    pool, _ = counted_pool
    query = "query One($id: ID!) { recipient(id: $id) { id } }"
    outside, own = {"id": "1"}, {"id": str(cast.recipient_id)}
    admin = await COMPILER.answer(pool, cast.admin, "a", query, "One", outside)
    staff_outside = await COMPILER.answer(pool, cast.staff, "s", query, "One", outside)
    staff_own = await COMPILER.answer(pool, cast.staff, "s", query, "One", own)
    assert admin is not None and json.loads(admin.body)["data"]["recipient"] == {"id": "1"}
    assert staff_outside is not None and staff_own is not None
    body = json.loads(staff_outside.body)
    assert body["data"]["recipient"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert json.loads(staff_own.body)["data"]["recipient"] == {"id": str(cast.recipient_id)}
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_setting('vaxvault.role', true)") == ""
        # With no principal RLS shows nothing: the staff's own recipient came through RLS.
        assert await conn.fetchval("SELECT count(*) FROM recipients WHERE id = $1",
                                   cast.recipient_id) == 0


@pytest.fixture(scope="module")
def served(postgres_url: str, seeded_template: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests import harness

    name = harness.unique_name("vvt_compiled")
    url = harness.create_database(postgres_url, name, template=seeded_template)
    settings = Settings(database_url=url, jwt_secret=JWT_SECRET,
                        state_dir=Path(tmp_path_factory.mktemp("state")))
    with live_server(settings) as base:
        yield base
    harness.drop_database(postgres_url, name)


def test_over_http_compiled_reads_are_the_bytes_postgresql_built(served: str) -> None:
    token = mint_token(JWT_SECRET, Role.ADMIN, sub="admin-1", ttl_s=300)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"query": RECIPIENT, "variables": {"id": "1"}}
    compiled = httpx.post(f"{served}/graphql", json=body, headers=headers, timeout=10)
    # Asking for the GraphQL-over-HTTP media type goes to strawberry's negotiation instead.
    negotiated = httpx.post(f"{served}/graphql", json=body, timeout=10, headers={
        **headers, "Accept": "application/graphql-response+json, application/json"})
    assert compiled.status_code == negotiated.status_code == 200
    assert compiled.headers["content-type"] == "application/json"
    assert compiled.json() == negotiated.json()
    assert compiled.json()["data"]["recipient"]["doses"]
    # json_build_object writes `"key" : value`; strawberry's json.dumps writes `"key":value`.
    assert b'"id" : "1"' in compiled.content
    assert b'"id" : ' not in negotiated.content
    # What browsers and common clients send is still answered by the compiled path.
    browser = httpx.post(f"{served}/graphql", json=body, timeout=10, headers={
        **headers, "Accept": "application/json, text/plain, */*"})
    assert b'"id" : "1"' in browser.content and browser.json() == compiled.json()
    # A mutation goes through the same endpoint to strawberry.
    mutation = httpx.post(f"{served}/graphql", headers=headers, timeout=10, json={
        "query": 'mutation { setPrivacyFreeze(scope: NATIONAL, until: null, reason: "t") '
                 "{ __typename } }"})
    assert mutation.status_code == 200 and "errors" not in mutation.json(), mutation.text
