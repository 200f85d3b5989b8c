"""The audit rows of compiled reads, committed together: group commit in the application.

A read that revealed personal data is answered only once its audit row is committed, as before.
What changed is who pays for the commit: each statement used to write its own row and commit
it (a transaction id, a WAL flush and its fsync per request, about half of what PostgreSQL
spent on a single-recipient read). Now the read statement is read-only and returns the row it
must leave (`audit`, json built by the statement itself: api/compiled/statement.py), and the
rows of the reads that finish while one commit is under way go out together in the next: one
INSERT, one commit, then every one of those requests may answer. A request alone still waits
for exactly one commit; under load a commit carries many rows.

Row security: audit_log's append policy lets a session write only rows in the name of the
principal it set. The INSERT sets each row's principal (`set_role`/`set_sub`) just before the
policy checks that row, so one commit may carry rows of many principals. Both those settings
and the row's actor come from the same json, which the read statement built from the
request's principal (the same parameters its _BEGIN_SQL set): the policy cannot catch a wrong
actor here, the statement's building of the row is what makes it right.

Failures: a row the database refuses (a data, constraint or policy error) fails the batch, which
is then retried row by row, so only that row's request goes to strawberry. Anything else (no
connection within the pool's timeout, a broken connection) fails the batch it hit. A flusher
cancelled (server shutdown) fails its waiters with an ordinary RuntimeError, never with the
CancelledError itself, so their requests fall back to strawberry like any failed commit
(api/compiled/asgi.py catches Exception): strawberry commits its own audit row before it
answers, so no personal data goes out without one. A cancelled INSERT may still have
committed; the fallback then audits the read twice, never not at all.
"""

from __future__ import annotations

import asyncio

import asyncpg

from api.compiled.connection import Reader

# The subquery is evaluated row by row below the INSERT and is never flattened into it (its
# outputs are volatile; OFFSET 0 says so again, whatever a later planner decides about those),
# and PostgreSQL never drops a volatile output of a subquery it does not flatten: each row's
# principal is set right before the policy checks that row. Pinned by
# tests/api/test_audit_commit.py's two-principal batch. A row's ids and fields come as the read
# gathered them (api/compiled/statement.py): sorted and without repeats here, as strawberry's
# audit rows are.
INSERT_SQL = """INSERT INTO audit_log (actor_sub, actor_role, actor_center_id, actor_district_id,
    action, operation, request_id, recipient_ids, fields, detail)
SELECT e.sub, e.role, e.center, e.district, 'read', e.operation, e.request,
    ARRAY(SELECT DISTINCT u FROM unnest(e.ids) u ORDER BY u),
    ARRAY(SELECT DISTINCT u COLLATE "C" FROM unnest(e.fields) u ORDER BY 1), '{}'::jsonb
FROM (SELECT e.*, set_config('vaxvault.role', e.set_role, true) AS role_set,
             set_config('vaxvault.sub', e.set_sub, true) AS sub_set
      FROM json_to_recordset($1::json) AS e(set_role text, set_sub text, sub text, role text,
          center int, district int, operation text, request text, ids bigint[],
          fields text[])
      OFFSET 0) e"""


# Errors about the rows themselves (SQLSTATE classes data exception, integrity constraint and
# WITH CHECK OPTION, and the append policy's refusal 42501): one row can cause them, so the batch
# is retried row by row. Not the rest of class 42 (a missing table or column mid-migration):
# every row would fail alike, and a retry per row would only add round trips.
_ROW_ERROR_CLASSES = frozenset({"22", "23", "44"})
_POLICY_REFUSAL = "42501"


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
                    # A pool connection per batch, not one held while rows keep coming: the wait
                    # for it is what lets the next batch grow (held, commits came 35-70% more
                    # often for no shorter answer: bench/lab/stop19-apifix/flusher_pool.py).
                    async with Reader(self.pool) as writer:
                        failures = await _commit(writer.conn, batch)
                except Exception as exc:
                    failures = {id(future): exc for _, future in batch}
                # Settled once the connection is back (a waiter's next read may want it).
                for _, future in batch:
                    if not future.done():
                        failed = failures.get(id(future))
                        if failed is None:
                            future.set_result(None)
                        else:
                            future.set_exception(failed)
                batch = []
        except BaseException:
            # Cancelled: nobody is left to commit. The waiters get an ordinary error (their
            # requests fall back); only this task is cancelled.
            for _, future in batch + self.waiting:
                if not future.done():
                    future.set_exception(RuntimeError("audit commit cancelled"))
            self.waiting = []
            raise
        finally:
            self.flusher = None


async def _commit(conn: asyncpg.Connection,
                  batch: list[tuple[str, asyncio.Future[None]]]) -> dict[int, Exception]:
    """Commit `batch`; the rows the database refused, by id() of their future, with why. Raises
    what is not about the rows (the caller fails the whole batch)."""
    try:
        await conn.execute(INSERT_SQL, "[" + ",".join(row for row, _ in batch) + "]")
    except asyncpg.PostgresError as exc:
        state = exc.sqlstate or ""
        if state[:2] not in _ROW_ERROR_CLASSES and state != _POLICY_REFUSAL:
            raise
        if len(batch) == 1:
            return {id(batch[0][1]): exc}
        failures: dict[int, Exception] = {}
        for one in batch:  # one bad row fails only its own request
            failures.update(await _commit(conn, [one]))
        return failures
    return {}
