"""The audit rows of compiled reads, committed together: group commit in the application.

A read that revealed personal data is answered only once its audit row is committed, as before.
What changed is who pays for the commit: each statement used to write its own row and commit
it (a transaction id, a WAL flush and its fsync per request, about half of what PostgreSQL
spent on a single-recipient read). Now the read statement is read-only and returns the row it
must leave (`audit`, json built by the statement itself: api/compiled/statement.py), and the
rows of the reads that finish while one commit is under way go out together in the next: one
INSERT, one commit, then every one of those requests may answer. A request alone still waits
for exactly one commit; under load a commit carries many rows.

Row security is unchanged: the INSERT sets each row's principal (what the read statement set:
role and sub, api/db/session.py's _BEGIN_SQL) just before that row is checked against
audit_log's append policy, so every row is still checked against the principal of the
request that read, and a row whose actor is not that principal fails the whole commit.
"""

from __future__ import annotations

import asyncio

import asyncpg

from api.compiled.connection import Reader

# The subquery is evaluated row by row below the INSERT, and OFFSET 0 keeps its volatile
# set_config columns (PostgreSQL never drops a volatile output of a subquery it cannot
# flatten): each row's principal is set right before the policy checks that row.
INSERT_SQL = """INSERT INTO audit_log (actor_sub, actor_role, actor_center_id, actor_district_id,
    action, operation, request_id, recipient_ids, fields, detail)
SELECT e.sub, e.role, e.center, e.district, 'read', e.operation, e.request, e.ids, e.fields,
    '{}'::jsonb
FROM (SELECT e.*, set_config('vaxvault.role', e.set_role, true) AS role_set,
             set_config('vaxvault.sub', e.set_sub, true) AS sub_set
      FROM json_to_recordset($1::json) AS e(set_role text, set_sub text, sub text, role text,
          center int, district int, operation text, request text, ids bigint[],
          fields text[])
      OFFSET 0) e"""


class AuditCommits:
    """One pool's pending audit rows and the commit that carries them."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.waiting: list[tuple[str, asyncio.Future[None]]] = []
        self.flusher: asyncio.Task[None] | None = None

    async def commit(self, row: str) -> None:
        """Return once `row` (one json object, as the read statement built it) is committed;
        raise what the commit raised if it failed (then the request must not answer)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((row, future))
        if self.flusher is None:
            self.flusher = asyncio.get_running_loop().create_task(self._flush())
        await future

    async def _flush(self) -> None:
        batch: list[tuple[str, asyncio.Future[None]]] = []
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                try:
                    async with Reader(self.pool) as reader:
                        await reader.conn.execute(
                            INSERT_SQL, "[" + ",".join(row for row, _ in batch) + "]")
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
                batch = []
        except BaseException:
            # Cancelled (server shutdown): nobody is left to commit. The waiters get an
            # ordinary error, so their requests fall back to strawberry (api/compiled/asgi.py
            # catches Exception), which commits its own audit row before answering; only this
            # task is cancelled. A cancelled INSERT may have committed: then the read is
            # audited twice, never not at all.
            for _, future in batch + self.waiting:
                if not future.done():
                    future.set_exception(RuntimeError("audit commit cancelled"))
            self.waiting = []
            raise
        finally:
            self.flusher = None
