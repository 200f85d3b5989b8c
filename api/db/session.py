"""One request, one transaction: the principal set for RLS, the freeze read, statements serialised.

The connection is taken from the pool on first use only, so a request refused before it needs
the database costs none. GraphQL resolves sibling fields concurrently; one asyncpg connection
runs one statement at a time, so statements queue on a lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from api.db.pool import ACQUIRE_TIMEOUT_S
from api.errors import DatabaseError, DatabaseUnavailable, InvalidText
from api.policy import HOME_DISTRICT_SQL, Freeze, freeze_applies
from api.principal import Principal

# Failures that mean "the database is not there right now", as opposed to a bad statement:
# the client is told to retry instead of seeing a masked error.
_UNAVAILABLE = (OSError, asyncio.TimeoutError, asyncpg.CannotConnectNowError,
                asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError)
_UNAVAILABLE_MESSAGE = "the registry database is unavailable or busy; try again shortly"

# Sets the principal (SET LOCAL semantics) and reads the freezes that bind it, in one round
# trip: the one covering its home district (policy.HOME_DISTRICT_SQL, from the database, never
# from an extra claim), and every district frozen now (their residents' data is withheld).
_BEGIN_SQL = f"""
SELECT set_config('vaxvault.role', $1, true), set_config('vaxvault.sub', $2, true),
       set_config('vaxvault.center_id', $3, true), set_config('vaxvault.district_id', $4, true),
       home.district_id AS home_district, f.district_id AS freeze_district, f.until, f.reason,
       -- As text, not int[]: an array type costs asyncpg a type-introspection round trip on
       -- each new connection.
       (SELECT coalesce(string_agg(DISTINCT district_id::text, ','), '') FROM privacy_freezes
        WHERE lifted_at IS NULL AND until > now() AND district_id IS NOT NULL)
           AS frozen_districts
FROM (SELECT {HOME_DISTRICT_SQL} AS district_id) home
LEFT JOIN LATERAL (
    SELECT district_id, until, reason FROM privacy_freezes
    WHERE lifted_at IS NULL AND until > now()
      AND (district_id IS NULL OR district_id = home.district_id)
    ORDER BY district_id NULLS FIRST, until DESC LIMIT 1) f ON true
"""


@dataclass(frozen=True)
class Statement:
    sql: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class RequestState:
    """What the database said about this request's principal at its start."""

    home_district_id: int | None
    freeze: Freeze | None
    frozen_districts: frozenset[int] = frozenset()


def _text(value: int | str | None) -> str:
    return "" if value is None else str(value)


def principal_args(p: Principal) -> tuple[str, str, str, str]:
    """The parameters of _BEGIN_SQL for `p`."""
    return p.role.value, _text(p.sub), _text(p.center_id), _text(p.district_id)


def request_state(p: Principal, row: asyncpg.Record) -> RequestState:
    """What a _BEGIN_SQL row says about `p`: its home district and the freeze covering it."""
    freeze = None
    if row["until"] is not None and freeze_applies(p, row["freeze_district"],
                                                   row["home_district"]):
        freeze = Freeze(district_id=row["freeze_district"], until=row["until"],
                        reason=row["reason"])
    return RequestState(home_district_id=row["home_district"], freeze=freeze,
                        frozen_districts=frozenset(
                            int(d) for d in row["frozen_districts"].split(",") if d))


class Session:
    def __init__(self, pool: asyncpg.Pool, principal: Principal) -> None:
        self.pool = pool
        self.principal = principal
        self._lock = asyncio.Lock()
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None
        self._state: RequestState | None = None
        self._broken = False
        self._wrote = False

    async def _begin(self, conn: Any) -> RequestState:
        self._transaction = conn.transaction()
        await self._transaction.start()
        row = await conn.fetchrow(_BEGIN_SQL, *principal_args(self.principal))
        return request_state(self.principal, row)

    async def _connection(self) -> Any:
        if self._conn is None:
            try:
                conn = await self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S)
            except _UNAVAILABLE as exc:
                raise DatabaseUnavailable(_UNAVAILABLE_MESSAGE) from exc
            try:
                self._state = await self._begin(conn)
            except BaseException as exc:
                self._transaction = None
                await self.pool.release(conn)  # the pool's reset rolls the transaction back
                if isinstance(exc, _UNAVAILABLE):
                    raise DatabaseUnavailable(_UNAVAILABLE_MESSAGE) from exc
                raise
            self._conn = conn
        return self._conn

    @property
    def known_state(self) -> RequestState | None:
        """The state if the transaction has begun (it has once any root field ran)."""
        return self._state

    async def state(self) -> RequestState:
        """The principal's request state; opens the transaction if it is not open yet."""
        async with self._lock:
            await self._connection()
        assert self._state is not None
        return self._state

    async def _recover(self, conn: Any) -> None:
        """After a failed read, start over so sibling fields still resolve.

        Only while nothing was written: a rollback then loses no work (under READ COMMITTED
        every statement sees its own snapshot anyway).
        """
        if self._broken and not self._wrote and self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await transaction.rollback()
            self._state = await self._begin(conn)
            self._broken = False

    async def _run(self, method: str, sql: str, args: Sequence[Any]) -> Any:
        async with self._lock:
            conn = await self._connection()
            await self._recover(conn)
            try:
                return await getattr(conn, method)(sql, *args)
            except asyncpg.CharacterNotInRepertoireError as exc:
                # Text types cannot hold NUL; no GraphQL String rule refuses it, so say it here.
                self._broken = True
                raise InvalidText("a text argument contains a character the registry cannot "
                                  "store (U+0000, NUL); remove it and send the request again") from exc
            except asyncpg.PostgresError:
                self._broken = True
                raise

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._run("fetch", sql, args)
        return result

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run("fetchrow", sql, args)
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchval", sql, args)

    async def execute(self, sql: str, *args: Any) -> str:
        status: str = await self._run("execute", sql, args)
        return status

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction for one write: a failed write rolls back alone."""
        async with self._lock:
            conn = await self._connection()
            await self._recover(conn)
            savepoint = conn.transaction()
            await savepoint.start()
        broken_before = self._broken
        try:
            yield
        except BaseException:
            async with self._lock:
                await savepoint.rollback()
            self._broken = broken_before
            raise
        else:
            async with self._lock:
                await savepoint.commit()
            self._wrote = True

    async def finish(self, final: Sequence[Statement]) -> None:
        """Run `final` (the audit) and commit; release the connection whatever happens.

        If a statement failed earlier, the transaction is rolled back and `final` runs in a new
        one, so the audit of what was already revealed is never skipped.
        """
        try:
            if self._conn is None and not final:
                return
            async with self._lock:
                conn = await self._connection()
                assert self._transaction is not None
                if self._broken:
                    transaction, self._transaction = self._transaction, None
                    await transaction.rollback()
                    if self._wrote:
                        # Writes were reported as done; they are gone, so the response must go.
                        raise DatabaseError("a statement failed after a write in the same "
                                            "request; the request was rolled back")
                    self._state = await self._begin(conn)
                for statement in final:
                    await conn.execute(statement.sql, *statement.args)
                transaction, self._transaction = self._transaction, None
                assert transaction is not None
                await transaction.commit()
        finally:
            await self.close()

    async def close(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            if self._transaction is not None and not conn.is_closed():
                transaction, self._transaction = self._transaction, None
                await transaction.rollback()
        finally:
            await self.pool.release(conn)
