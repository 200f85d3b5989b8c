"""Round trips of the compiled path, counted on the wire, and the path served over real HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.auth import mint_token
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


async def test_a_compiled_read_is_one_round_trip_whatever_its_size(
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
            # One statement: principal (transaction-local) and freezes, the read, the audit
            # INSERT, committed by itself; the release sends nothing (no RESET ALL).
            assert [s.split()[0].upper() for s in statements] == ["WITH"], statements
            for setting in ("role", "sub", "center_id", "district_id"):
                assert f"set_config('vaxvault.{setting}', " in statements[0]
            assert "set_config('vaxvault.role', $1, true)" in statements[0]
            assert "INSERT INTO audit_log" in statements[0]
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
