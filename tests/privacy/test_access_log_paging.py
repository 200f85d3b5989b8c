"""me.accessLog pages per recipient: nobody's entries are crowded out, and every one is reachable."""

from __future__ import annotations

import asyncpg

from api.principal import Role
from api.settings import Settings
from tests.api.client import principal, run
from tests.api.conftest import Cast


async def _flood(owner: asyncpg.Connection, quiet: int, busy: int, busy_entries: int) -> None:
    # The quiet recipient's few entries are the oldest; the busy one's 1,050 come after.
    await owner.execute(
        "INSERT INTO audit_log (actor_sub, actor_role, action, recipient_ids, fields) "
        "SELECT 'nurse-1', 'center_staff', 'read', ARRAY[$1::bigint], ARRAY['fullName'] "
        "FROM generate_series(1, 5)", quiet)
    await owner.execute(
        "INSERT INTO audit_log (actor_sub, actor_role, action, recipient_ids, fields) "
        "SELECT 'nurse-1', 'center_staff', 'read', ARRAY[$1::bigint], ARRAY['phone'] "
        "FROM generate_series(1, $2)", busy, busy_entries)


async def test_a_busy_neighbour_in_the_batch_crowds_nobody_out(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast,
        owner: asyncpg.Connection) -> None:
    quiet, busy = [r["id"] for r in await owner.fetch(
        "SELECT id FROM recipients WHERE id NOT IN (SELECT unnest(recipient_ids) FROM audit_log)"
        " ORDER BY id LIMIT 2")]
    await _flood(owner, quiet, busy, 1050)
    answer = await run(pool, seeded_settings, cast.admin,
                       f'{{ a: recipient(id: "{quiet}") {{ accessLog {{ fields }} }} '
                       f'b: recipient(id: "{busy}") {{ accessLog(first: 100) {{ fields }} }} }}')
    assert not answer.errors and answer.data is not None
    assert [e["fields"] for e in answer.data["a"]["accessLog"]] == [["fullName"]] * 5
    assert len(answer.data["b"]["accessLog"]) == 100


async def test_a_recipient_pages_through_every_entry_past_a_thousand(
        pool: asyncpg.Pool, seeded_settings: Settings, owner: asyncpg.Connection) -> None:
    quiet, busy = [r["id"] for r in await owner.fetch(
        "SELECT id FROM recipients WHERE id NOT IN (SELECT unnest(recipient_ids) FROM audit_log)"
        " ORDER BY id LIMIT 2")]
    await _flood(owner, quiet, busy, 1050)
    me = principal(Role.RECIPIENT, sub=str(busy))
    seen: list[str] = []
    after = None
    while True:
        argument = f', after: "{after}"' if after else ""
        page = await run(pool, seeded_settings, me,
                         f"{{ me {{ accessLog(first: 100{argument}) {{ cursor fields }} }} }}")
        assert not page.errors and page.data is not None
        entries = page.data["me"]["accessLog"]
        if not entries:
            break
        seen += [e["cursor"] for e in entries]
        after = entries[-1]["cursor"]
    assert len(seen) == len(set(seen)) == 1050
    refused = await run(pool, seeded_settings, me, "{ me { accessLog(first: 101) { at } } }")
    assert refused.codes() == {"me.accessLog": "BAD_USER_INPUT"}
