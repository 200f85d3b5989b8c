"""Saved dry-run plans: an apply reuses the dry run's rows at T and decisions when nothing they
depend on has changed, instead of rebuilding and classifying again.

A dry run (depth 0) saves, in UNLOGGED tables of the backup schema, the rows at T it would
restore and their decisions, with one registry row: what the plan was made from (`parts`: the
database, the request, the repository's history, the live table's shape) and the dry run's
database snapshot (`made_in`). An apply with the same parts takes it when, in the apply's own
snapshot, the live change log holds no change of the table by a transaction the dry run did not
see (`NOT pg_visible_in_snapshot(txid, made_in)`): that catches a transaction open across the
dry run that commits later with earlier positions, which a position comparison would miss.
While the history is the same (same segments, log trimmed at the same place), every such change
is still in the log. The restore's own earlier writes are captured changes like any other.

A plan is refused, never trusted, when its digest does not match its content (HMAC with a key
derived from the repository key when there is one, else SHA-256: then whoever may write the
backup schema could forge a plan, as they could forge the change log restore reads anyway), when
it was made for other parts (another database, request or history), from a snapshot this
cluster has not reached, or after LIFETIME. A plan is used once; expired ones are dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from backup.capture.triggers import SCHEMA
from backup.restore.asof import LiveTable
from backup.restore.predicate_sql import quote_identifier
from backup.restore.source import LIVE_LOG, History
from backup.storage.codec import Key
from backup.storage.repository import Repository

PLANS = f"{SCHEMA}.restore_plans"
LIFETIME = timedelta(minutes=30)
KEPT = 8  # saved plans at most; the oldest go first

_SETUP = f"""
CREATE UNLOGGED TABLE IF NOT EXISTS {PLANS} (
    id          text PRIMARY KEY,
    table_name  text NOT NULL,
    fingerprint text NOT NULL,
    parts       jsonb NOT NULL,
    made_in     text NOT NULL,
    made_at     timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    plan        jsonb NOT NULL,
    rows_digest text NOT NULL,
    digest      text NOT NULL
);
REVOKE ALL ON {PLANS} FROM PUBLIC;
"""

# The table's identity (dropped and recreated: same name, new oid), every index and every
# constraint (NOT VALID shown): a unique index added since the dry run changes what classify
# decides, and the plan's kept_parents is indexed by the table's foreign keys; no change log
# records either. Columns and their types come from the LiveTable.
_SHAPE = """
SELECT to_regclass($1)::oid::text
    || '; ' || coalesce((SELECT string_agg(pg_get_indexdef(indexrelid), '; '
                                           ORDER BY indexrelid::regclass::text)
                         FROM pg_index WHERE indrelid = to_regclass($1)), '')
    || '; ' || coalesce((SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), '; ' ORDER BY conname)
                         FROM pg_constraint WHERE conrelid = to_regclass($1)), '')
"""


@dataclass(frozen=True)
class PlanReuse:
    """What became of the saved plan: 'saved' (by a dry run, until `expires_at`), 'reused' (by an
    apply), 'not reused' or 'not saved', with the reason in words."""

    status: str
    plan_id: str | None = None
    reason: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Taken:
    """A valid saved plan, loaded into the restore's temp tables `temp` and `<temp>_act`."""

    plan_id: str
    made_at: datetime
    data: dict[str, Any]


def _rows_table(plan_id: str) -> str:
    return f"{SCHEMA}.{quote_identifier('plan_' + plan_id)}"


def _act_table(plan_id: str) -> str:
    return f"{SCHEMA}.{quote_identifier('plan_' + plan_id + '_act')}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _digest(key: Key | None, fields: list[Any]) -> str:
    text = _canonical(fields).encode()
    if key is None:
        return "sha256:" + hashlib.sha256(text).hexdigest()
    secret = hashlib.sha256(b"vaxvault-restore-plan:" + key.secret).digest()
    return "hmac:" + hmac.new(secret, text, hashlib.sha256).hexdigest()


async def parts(conn: asyncpg.Connection, repo: Repository, key: Key | None, history: History,
                live: LiveTable, request: dict[str, Any]) -> dict[str, Any]:
    """What a plan depends on besides the table's rows: read inside the restore's transaction,
    after open_history (same snapshot, so the same trimmed position it read)."""
    database = await conn.fetchrow("SELECT current_database() AS name, (SELECT oid FROM pg_database "
                                   "WHERE datname = current_database())::text AS oid")
    try:
        async with conn.transaction():  # a savepoint: a refusal must not abort the restore's transaction
            system = await conn.fetchval("SELECT system_identifier::text FROM pg_control_system()")
    except asyncpg.InsufficientPrivilegeError:
        system = None
    trimmed = None
    if await conn.fetchval("SELECT to_regclass($1)", f"{SCHEMA}.state") is not None:
        trimmed = await conn.fetchval(f"SELECT coalesce(trimmed, watermark) FROM {SCHEMA}.state")
    return {
        "database": {"name": database["name"], "oid": database["oid"], "system": system},
        "request": request,
        "history": {"repository": repo.url, "key": key.id if key else None,
                    "snapshot": history.snapshot.id, "segments": [s.id for s in history.segments],
                    "live_log": history.live_log, "trimmed": trimmed,
                    "gap_after": history.gap_after.isoformat() if history.gap_after else None},
        "table": {"name": live.qualified, "columns": [[c, live.types[c]] for c in live.columns],
                  "primary_key": list(live.primary_key),
                  "indexes": await conn.fetchval(_SHAPE, live.qualified)},
    }


def fingerprint(plan_parts: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(plan_parts).encode()).hexdigest()


async def _rows_digest(conn: asyncpg.Connection, rows: str, act: str, counts: tuple[int, int]) -> str:
    """The saved tables' row counts and the transaction that wrote them (every row's xmin): an
    edit after the dry run (UPDATE, INSERT, DELETE, TRUNCATE) changes one or the other. Reading
    xmin renders no row, so it costs a fraction of hashing the rows' text."""
    writer = await conn.fetchval(f"SELECT xmin::text FROM {rows} LIMIT 1") or \
        await conn.fetchval(f"SELECT xmin::text FROM {act} LIMIT 1") or "-"
    return f"{counts[0]}:{counts[1]}:{writer}"


async def _rows_unchanged(conn: asyncpg.Connection, rows: str, act: str, rows_digest: str) -> bool:
    """Whether both saved tables still hold exactly the rows their dry run wrote."""
    try:
        count_rows, count_act, writer = rows_digest.split(":")
    except ValueError:
        return False
    for table, count in ((rows, count_rows), (act, count_act)):
        found = await conn.fetchrow(f"SELECT count(*) AS n, count(*) FILTER (WHERE xmin::text = $1) AS mine "
                                    f"FROM {table}", writer)
        if str(found["n"]) != count or found["mine"] != found["n"]:
            return False
    return True


async def save(conn: asyncpg.Connection, key: Key | None, live: LiveTable, temp: str,
               plan_parts: dict[str, Any], data: dict[str, Any]) -> PlanReuse:
    """Save the dry run's `temp` rows that have a decision and `<temp>_act`, inside the dry run's
    transaction (which must then commit). Never raises for PostgreSQL: a plan that cannot be saved
    is reported 'not saved' and the dry run is unchanged."""
    plan_id = secrets.token_hex(8)
    keys = ", ".join(quote_identifier(c) for c in live.primary_key)
    rows, act = _rows_table(plan_id), _act_table(plan_id)
    try:
        async with conn.transaction():
            await conn.execute(_SETUP)
            await drop_expired(conn)
            for earlier in await conn.fetch(f"DELETE FROM {PLANS} WHERE table_name = $1 AND fingerprint = $2 "
                                            "RETURNING id", live.qualified, fingerprint(plan_parts)):
                await _drop(conn, earlier["id"])  # replaced: an apply takes the latest dry run's
            saved_rows = await conn.execute(
                f"CREATE UNLOGGED TABLE {rows} AS SELECT a.* FROM {quote_identifier(temp)} a "
                f"JOIN {quote_identifier(temp + '_act')} k USING ({keys})")
            saved_act = await conn.execute(f"CREATE UNLOGGED TABLE {act} AS "
                                           f"SELECT * FROM {quote_identifier(temp + '_act')}")
            await conn.execute(f"REVOKE ALL ON {rows}, {act} FROM PUBLIC")
            made_in, made_at = await conn.fetchrow("SELECT pg_current_snapshot()::text, now()")
            expires_at = made_at + LIFETIME
            digest_of_rows = await _rows_digest(conn, rows, act, (int(saved_rows.split()[-1]),
                                                                 int(saved_act.split()[-1])))
            digest = _digest(key, [plan_id, fingerprint(plan_parts), made_in, made_at.isoformat(),
                                   expires_at.isoformat(), data, digest_of_rows])
            await conn.execute(
                f"INSERT INTO {PLANS} (id, table_name, fingerprint, parts, made_in, made_at, expires_at, "
                "plan, rows_digest, digest) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8::jsonb, $9, $10)",
                plan_id, live.qualified, fingerprint(plan_parts), _canonical(plan_parts), made_in, made_at,
                expires_at, _canonical(data), digest_of_rows, digest)
    except asyncpg.PostgresError as exc:
        return PlanReuse("not saved", reason=f"the plan could not be saved ({type(exc).__name__}: {exc})")
    return PlanReuse("saved", plan_id, expires_at=expires_at)


async def drop_expired(conn: asyncpg.Connection) -> None:
    """Drop expired plans, and the oldest beyond KEPT."""
    gone = await conn.fetch(
        f"DELETE FROM {PLANS} WHERE expires_at <= now() OR id IN (SELECT id FROM {PLANS} "
        f"ORDER BY made_at DESC OFFSET {KEPT - 1}) RETURNING id")
    for row in gone:
        await _drop(conn, row["id"])


async def _drop(conn: asyncpg.Connection, plan_id: str) -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {_rows_table(plan_id)}, {_act_table(plan_id)}")


async def _forget(conn: asyncpg.Connection, plan_id: str) -> None:
    await conn.execute(f"DELETE FROM {PLANS} WHERE id = $1", plan_id)
    await _drop(conn, plan_id)


def _differs(saved: dict[str, Any], now: dict[str, Any]) -> str:
    words = {"history": "from another repository history (a backup ran or was pruned since, or "
                        "another repository)",
             "table": "when the table had another shape (columns or indexes)"}
    if saved.get("database") != now["database"]:
        return "in another database"
    if saved.get("request") != now["request"]:
        changed = sorted(k for k in now["request"] if saved.get("request", {}).get(k) != now["request"][k])
        return f"with other options ({', '.join(changed) or 'request'})"
    for part in ("history", "table"):
        if saved.get(part) != now[part]:
            return words[part]
    return "for other parts"


async def take(conn: asyncpg.Connection, key: Key | None, live: LiveTable, temp: str,
               plan_parts: dict[str, Any]) -> Taken | PlanReuse:
    """The latest saved plan for exactly `plan_parts`, checked and loaded into TEMP tables `temp`
    and `<temp>_act` (dropped at commit), and consumed; else PlanReuse('not reused', reason).
    Must run in the apply's REPEATABLE READ transaction, after the live log was drained, before
    the restore writes. A refused plan is dropped (at the apply's commit)."""
    if await conn.fetchval("SELECT to_regclass($1)", PLANS) is None:
        return PlanReuse("not reused", reason="no dry run saved a plan")
    await drop_expired(conn)
    wanted = fingerprint(plan_parts)
    # Claimed (row-locked) before anything of it is read: a second apply racing for the same plan
    # skips it and plans afresh, rather than deadlocking on the plan's tables with this one.
    row = await conn.fetchrow(f"SELECT * FROM {PLANS} WHERE table_name = $1 AND fingerprint = $2 "
                              "ORDER BY made_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED", live.qualified, wanted)
    if row is None:
        return await _none_taken(conn, key, live, wanted, plan_parts)
    plan_id = row["id"]
    refused = await _refusal(conn, key, row, wanted, plan_parts)
    if refused is None:
        changed = await _changes_since(conn, live, row["made_in"])
        if changed:
            refused = (f"{live.name} changed since the dry run ({changed} captured change(s) committed "
                       "that the dry run did not see)")
    if refused is None:
        refused = await _load(conn, live, temp, plan_id, row["rows_digest"])
    if refused is not None:
        await _forget(conn, plan_id)
        return PlanReuse("not reused", plan_id, reason=refused)
    await _forget(conn, plan_id)
    return Taken(plan_id, row["made_at"], json.loads(row["plan"]))


async def _none_taken(conn: asyncpg.Connection, key: Key | None, live: LiveTable, wanted: str,
                      plan_parts: dict[str, Any]) -> PlanReuse:
    """Why no plan was taken. A plan made for other parts (options, history, shape) is left for
    the apply it was made for: it expires, or a later dry run of its parts replaces it."""
    other = await conn.fetchrow(f"SELECT * FROM {PLANS} WHERE table_name = $1 ORDER BY made_at DESC LIMIT 1",
                                live.qualified)
    if other is None:
        return PlanReuse("not reused", reason=f"no dry run of {live.name} saved a plan in the last "
                         f"{int(LIFETIME.total_seconds() // 60)} minutes")
    if other["fingerprint"] == wanted:
        return PlanReuse("not reused", other["id"], reason="another restore is applying the dry run's plan")
    reason = await _refusal(conn, key, other, wanted, plan_parts)
    return PlanReuse("not reused", other["id"], reason=reason or "the dry run was made for other parts")


async def _refusal(conn: asyncpg.Connection, key: Key | None, row: asyncpg.Record, wanted: str,
                   plan_parts: dict[str, Any]) -> str | None:
    saved_parts = json.loads(row["parts"])
    made = row["made_at"].isoformat()
    expected = _digest(key, [row["id"], row["fingerprint"], row["made_in"], made,
                             row["expires_at"].isoformat(), json.loads(row["plan"]), row["rows_digest"]])
    if not hmac.compare_digest(expected, row["digest"]) or fingerprint(saved_parts) != row["fingerprint"]:
        return ("refused: the saved plan's digest does not match its content (edited, or saved with "
                "another repository key)")
    if row["fingerprint"] != wanted:
        return f"the dry run of {made} was made {_differs(saved_parts, plan_parts)}"
    if row["expires_at"] <= await conn.fetchval("SELECT now()"):
        return f"the dry run of {made} expired"
    future = await conn.fetchval("SELECT pg_snapshot_xmax($1::text::pg_snapshot) > "
                                 "pg_snapshot_xmax(pg_current_snapshot())", row["made_in"])
    if future:
        return "refused: the saved plan's snapshot is ahead of this database (made elsewhere)"
    return None


async def _changes_since(conn: asyncpg.Connection, live: LiveTable, made_in: str) -> int | None:
    """Captured changes of the table committed, as the apply sees it, by transactions the dry run
    did not see; None when there is no change log to tell (then the plan is not reused)."""
    if await conn.fetchval("SELECT to_regclass($1)", LIVE_LOG) is None:
        return None
    found: int = await conn.fetchval(
        f"SELECT count(*) FROM {LIVE_LOG} WHERE table_name = $1 "
        "AND txid >= pg_snapshot_xmin($2::text::pg_snapshot) "
        "AND NOT pg_visible_in_snapshot(txid, $2::text::pg_snapshot)", live.name, made_in)
    return found


async def _load(conn: asyncpg.Connection, live: LiveTable, temp: str, plan_id: str,
                rows_digest: str) -> str | None:
    rows, act = _rows_table(plan_id), _act_table(plan_id)
    if await conn.fetchval("SELECT to_regclass($1) IS NULL OR to_regclass($2) IS NULL",
                           rows, act):
        return "the saved plan's rows are gone (the server restarted: plans are not crash-safe)"
    if not await _rows_unchanged(conn, rows, act, rows_digest):
        return "refused: the saved plan's rows do not match its digest (edited)"
    await conn.execute(f"CREATE TEMP TABLE {quote_identifier(temp)} ON COMMIT DROP AS SELECT * FROM {rows}")
    await conn.execute(f"CREATE TEMP TABLE {quote_identifier(temp + '_act')} ON COMMIT DROP AS "
                       f"SELECT * FROM {act}")
    keys = ", ".join(quote_identifier(c) for c in live.primary_key)
    await conn.execute(f"ALTER TABLE {quote_identifier(temp)} ADD PRIMARY KEY ({keys})")
    await conn.execute(f"ANALYZE {quote_identifier(temp)}")
    await conn.execute(f"ANALYZE {quote_identifier(temp + '_act')}")
    return None
