"""Reads of personal data leave one audit entry per request; counts leave none."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.api.client import run
from tests.api.conftest import Cast


async def _entries(owner: asyncpg.Connection) -> list[asyncpg.Record]:
    return await owner.fetch("SELECT * FROM audit_log ORDER BY id")


async def test_a_read_of_personal_fields_writes_one_entry(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    result = await run(pool, seeded_settings, cast.staff,
                       "query StaffList { recipients(first: 30) { edges { node { id nationalId "
                       "fullName sex doses { id } } } } }", request_id="req-42")
    assert result.data is not None and not result.errors
    shown = sorted(int(e["node"]["id"]) for e in result.data["recipients"]["edges"])
    entries = await _entries(owner)
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["actor_role"], entry["actor_sub"], entry["actor_center_id"]) == (
        "center_staff", "nurse-1", cast.center_id)
    assert (entry["action"], entry["operation"], entry["request_id"]) == (
        "read", "StaffList", "req-42")
    assert sorted(entry["recipient_ids"]) == shown
    assert sorted(entry["fields"]) == ["fullName", "nationalId"]


async def test_counts_and_non_personal_fields_are_not_audited(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    for principal, query in (
            (cast.public, "{ coverage(groupBy: [DISTRICT]) { doses } districts { name } }"),
            (cast.staff, "{ recipients(first: 5) { edges { node { id sex doses { id } } } } }"),
            (cast.officer, "{ coverage { doses recipients } }")):
        result = await run(pool, seeded_settings, principal, query)
        assert not result.errors
    assert await _entries(owner) == []


async def test_the_audit_is_written_when_the_request_partly_fails(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    result = await run(pool, seeded_settings, cast.staff,
                       f'{{ recipient(id: "{cast.recipient_id}") {{ phone }} '
                       "auditLog { edges { node { id } } } recipients(first: 1000) { edges "
                       "{ node { id } } } }")
    assert result.codes() == {"auditLog": "FORBIDDEN", "recipients": "BAD_USER_INPUT"}
    entries = await _entries(owner)
    assert [(e["recipient_ids"], e["fields"]) for e in entries] == [([cast.recipient_id], ["phone"])]


async def test_a_recipient_sees_who_read_their_data_by_role_not_by_person(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast) -> None:
    await run(pool, seeded_settings, cast.staff,
              f'{{ recipient(id: "{cast.recipient_id}") {{ fullName }} }}')
    result = await run(pool, seeded_settings, cast.recipient,
                       "{ me { accessLog { action role centerId fields } } }")
    assert result.data == {"me": {"accessLog": [
        {"action": "read", "role": "center_staff", "centerId": str(cast.center_id),
         "fields": ["fullName"]}]}}


async def test_auditors_filter_the_log(pool: asyncpg.Pool, seeded_settings: Any,
                                       cast: Cast) -> None:
    await run(pool, seeded_settings, cast.staff,
              f'{{ recipient(id: "{cast.recipient_id}") {{ fullName }} }}')
    await run(pool, seeded_settings, cast.admin, '{ recipient(id: "1") { phone } }')
    result = await run(pool, seeded_settings, cast.auditor,
                       f'{{ auditLog(filter: {{recipientId: "{cast.recipient_id}", '
                       'actorRole: "center_staff"}) { edges { node { actorSub recipientIds } } } }')
    assert result.data == {"auditLog": {"edges": [
        {"node": {"actorSub": "nurse-1", "recipientIds": [str(cast.recipient_id)]}}]}}
