"""The group commit of compiled reads' audit rows (api/compiled/audit_commit.py), driven directly
against a real pool: a flusher cancelled mid-commit, a batch with a row the database refuses, and
one commit carrying rows of two principals.

Every wait is bounded (asyncio.timeout): a test that blocks the INSERT on a lock must fail, not
hang the suite, if the code under test never gets there.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from api.compiled.asgi import CompiledReads
from api.compiled.audit_commit import AuditCommits
from tests.api.compiled_paths import COMPILER
from tests.api.conftest import Cast

WAIT_S = 20
RECIPIENT = "query R($id: ID!) { recipient(id: $id) { id fullName } }"


def _row(*, role: str, sub: str | None, request: str, set_role: str | None = None,
         set_sub: str | None = None, ids: tuple[int, ...] = (1,)) -> str:
    """An audit row as the read statement builds it; set_role/set_sub default to the actor's."""
    return json.dumps({
        "set_role": role if set_role is None else set_role,
        "set_sub": sub if set_sub is None else set_sub, "sub": sub, "role": role,
        "center": None, "district": None, "operation": "T", "request": request,
        "ids": list(ids), "fields": ["Recipient.fullName"]})


async def _audit_lock_waiter(owner: asyncpg.Connection) -> None:
    """Until some session waits for a lock on audit_log (the INSERT behind the owner's lock)."""
    while not await owner.fetchval(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE relation = 'audit_log'::regclass "
            "AND NOT granted)"):
        await asyncio.sleep(0.02)


async def test_a_cancelled_flusher_fails_its_waiters_with_an_ordinary_error(
        counted_pool: tuple[asyncpg.Pool, list[str]], seeded_database_url: str) -> None:
    """Shutdown cancels the flusher while its INSERT waits: the waiters (queued in its batch or
    after it) get a RuntimeError, an Exception, so the ASGI path can fall back; the flusher
    alone is cancelled."""
    pool, _ = counted_pool
    commits = AuditCommits(pool)
    locker = await asyncpg.connect(seeded_database_url)
    try:
        async with asyncio.timeout(WAIT_S):
            await locker.execute("BEGIN; LOCK TABLE audit_log IN SHARE MODE")
            first = asyncio.create_task(commits.commit(_row(role="admin", sub="a", request="c1")))
            await _audit_lock_waiter(locker)
            # Arrives while the first commit is under way: waits for the next one.
            second = asyncio.create_task(commits.commit(_row(role="admin", sub="a", request="c2")))
            await asyncio.sleep(0)
            flusher = commits.flusher
            assert flusher is not None and commits.waiting
            flusher.cancel()
            await asyncio.wait([first, second, flusher])
        assert flusher.cancelled()
        for waiter in (first, second):
            assert not waiter.cancelled()
            assert isinstance(waiter.exception(), RuntimeError), waiter
        assert commits.flusher is None and not commits.waiting
    finally:
        await locker.close()
    # The pool's connection came back: a later row is committed by a new flusher.
    async with asyncio.timeout(WAIT_S):
        await commits.commit(_row(role="admin", sub="a", request="c3"))


async def test_a_cancelled_audit_commit_sends_the_request_on_to_strawberry(
        pool: asyncpg.Pool, cast: Cast, seeded_database_url: str) -> None:
    """Over ASGI: the read's audit commit is cancelled (server shutdown); the request goes on to
    the next app (strawberry, which commits its own audit row first) instead of a 500."""
    fallen_back: list[str] = []

    async def strawberry(scope: Any, receive: Any, send: Any) -> None:
        fallen_back.append(scope["vaxvault.request_id"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    reads = CompiledReads(strawberry, COMPILER, {"pool": pool}, "vaxvault.principal",
                          "vaxvault.request_id")
    body = json.dumps({"query": RECIPIENT, "variables": {"id": str(cast.recipient_id)}}).encode()
    scope = {"type": "http", "method": "POST", "path": "/graphql",
             "headers": [(b"content-type", b"application/json")],
             "vaxvault.principal": cast.admin, "vaxvault.request_id": "cancelled-commit"}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    locker = await asyncpg.connect(seeded_database_url)
    try:
        async with asyncio.timeout(WAIT_S):
            await locker.execute("BEGIN; LOCK TABLE audit_log IN SHARE MODE")
            request = asyncio.create_task(reads(scope, receive, send))
            await _audit_lock_waiter(locker)
            flusher = COMPILER.commits[pool].flusher
            assert flusher is not None
            flusher.cancel()
            await asyncio.wait([request])
    finally:
        await locker.close()
    assert not request.cancelled() and request.exception() is None, request
    assert fallen_back == ["cancelled-commit"]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200]


async def test_a_refused_row_fails_only_its_own_request(
        counted_pool: tuple[asyncpg.Pool, list[str]], owner: asyncpg.Connection) -> None:
    """One row of a batch in another principal's name (the append policy refuses it): the batch
    is retried row by row, the others are committed and their requests answer."""
    pool, statements = counted_pool
    commits = AuditCommits(pool)
    rows = [_row(role="admin", sub="admin-1", request="good-1"),
            _row(role="auditor", sub="auditor-1", request="forged", set_role="admin",
                 set_sub="admin-1"),
            _row(role="recipient", sub="7", request="good-2", ids=(7,)),
            _row(role="center_staff", sub="nurse-1", request="good-3")]
    async with asyncio.timeout(WAIT_S):
        outcomes = await asyncio.gather(*[commits.commit(r) for r in rows],
                                        return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == [
        "NoneType", "InsufficientPrivilegeError", "NoneType", "NoneType"]
    assert "row-level security" in str(outcomes[1])
    inserts = [s for s in statements if s.startswith("INSERT INTO audit_log")]
    assert len(inserts) == 1 + len(rows), statements  # the batch, then each row alone
    committed = await owner.fetch("SELECT request_id, actor_role FROM audit_log "
                                  "ORDER BY request_id")
    assert [tuple(r) for r in committed] == [
        ("good-1", "admin"), ("good-2", "recipient"), ("good-3", "center_staff")]


async def test_one_commit_carries_rows_of_two_principals_each_in_its_own_name(
        counted_pool: tuple[asyncpg.Pool, list[str]], owner: asyncpg.Connection,
        seeded_database_url: str) -> None:
    """Two principals' rows, interleaved, in one INSERT: each row is checked against and lands
    with its own principal (the per-row set_config that OFFSET 0 keeps); the append policy
    still holds, and each principal reads back only what RLS lets it."""
    pool, statements = counted_pool
    commits = AuditCommits(pool)
    rows = [_row(role="admin", sub="admin-1", request="two-1", ids=(11,)),
            _row(role="recipient", sub="12", request="two-2", ids=(12,)),
            _row(role="admin", sub="admin-1", request="two-3", ids=(13,)),
            _row(role="recipient", sub="12", request="two-4", ids=(12,))]
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*[commits.commit(r) for r in rows])
    inserts = [s for s in statements if s.startswith("INSERT INTO audit_log")]
    assert len(inserts) == 1, statements
    committed = await owner.fetch("SELECT request_id, actor_role, actor_sub, recipient_ids "
                                  "FROM audit_log ORDER BY request_id")
    assert [tuple(r) for r in committed] == [
        ("two-1", "admin", "admin-1", [11]), ("two-2", "recipient", "12", [12]),
        ("two-3", "admin", "admin-1", [13]), ("two-4", "recipient", "12", [12])]
    # The settings ended with the INSERT's transaction; RLS on reading holds per principal.
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_setting('vaxvault.role', true)") == ""
        async with conn.transaction():
            await conn.execute("SELECT set_config('vaxvault.role', 'recipient', true), "
                               "set_config('vaxvault.sub', '12', true)")
            seen = await conn.fetch("SELECT request_id FROM audit_log ORDER BY request_id")
        assert [r["request_id"] for r in seen] == ["two-2", "two-4"]
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute("SELECT set_config('vaxvault.role', 'recipient', true), "
                                   "set_config('vaxvault.sub', '12', true)")
                await conn.execute(
                    "INSERT INTO audit_log (actor_sub, actor_role, action, operation, "
                    "request_id, recipient_ids, fields, detail) VALUES ('admin-1', 'admin', "
                    "'read', 'T', 'x', '{12}', '{}', '{}')")


async def test_a_rows_ids_and_fields_are_stored_sorted_and_once(
        counted_pool: tuple[asyncpg.Pool, list[str]], owner: asyncpg.Connection,
        seeded_database_url: str) -> None:
    """The read statement sends ids and fields as it gathered them (repeats, any order); the
    batch INSERT stores them as strawberry's audit rows are: sorted, each once."""
    pool, _ = counted_pool
    commits = AuditCommits(pool)
    row = json.loads(_row(role="admin", sub="admin-1", request="repeats", ids=(13, 11, 13)))
    row["fields"] = ["Recipient.phone", "Recipient.fullName", "Recipient.phone"]
    async with asyncio.timeout(WAIT_S):
        await commits.commit(json.dumps(row))
    stored = await owner.fetchrow("SELECT recipient_ids, fields FROM audit_log WHERE request_id = 'repeats'")
    assert stored["recipient_ids"] == [11, 13]
    assert stored["fields"] == ["Recipient.fullName", "Recipient.phone"]
