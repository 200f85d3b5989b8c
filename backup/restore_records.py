"""Point-in-time restore of lost records: rebuild rows as at T, compare with live rows, act per row.

`plan_restore` is the dry run (counts per action and a sample diff, nothing written);
`restore_records` does the same in ONE transaction and applies it, audited. Both read the
repository alone for history; the live change log, when present, adds the changes not yet
shipped. A second run finds every restored row equal to its image at T and restores nothing.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from backup.change import Change, Row
from backup.codec import Key
from backup.predicate import Expr, render
from backup.predicate_sql import quote_identifier, to_sql, validate
from backup.repository import Repository
from backup.restore_asof import KeyTuple, LiveTable, build_as_of, describe_live
from backup.restore_audit import write_audit
from backup.restore_decision import Action, Comparison, RowHistory, decide
from backup.restore_errors import RestoreError, RestorePlanError
from backup.restore_parents import restore_parents
from backup.restore_source import History, live_changes, load_history, shipped_changes


class ConflictPolicy(StrEnum):
    SKIP = "skip"
    OVERWRITE = "overwrite"


@dataclass(frozen=True)
class RestoreRequest:
    """What to restore. where: a parsed predicate (see backup.predicate) over the rows at T.
    columns: restrict comparison and write-back to these (None = every column)."""

    table: str
    as_of: datetime
    where: Expr | None = None
    columns: tuple[str, ...] | None = None
    on_conflict: ConflictPolicy = ConflictPolicy.SKIP
    with_parents: bool = False
    actor: str = "unknown"
    actor_role: str = "admin"
    use_live_log: bool = True
    sample_size: int = 10


@dataclass(frozen=True)
class RowDiff:
    """One row's action and, column by column, its live value and its value at T."""

    key: Row
    action: str
    reason: str
    columns: dict[str, tuple[Any, Any]]


@dataclass(frozen=True)
class RestorePlan:
    table: str
    as_of: datetime
    predicate: str | None
    snapshot_id: str
    segments: int
    chunks_read: int
    chunks_total: int
    matched: int
    counts: dict[str, int]
    sample: tuple[RowDiff, ...]
    conflicts: tuple[RowDiff, ...]
    conflicts_total: int
    used_live_log: bool
    parents: dict[str, int] = field(default_factory=dict)

    @property
    def restorable(self) -> int:
        return self.counts.get(Action.REINSERT, 0) + self.counts.get(Action.WRITE_BACK, 0)


@dataclass(frozen=True)
class RestoreReport:
    plan: RestorePlan
    applied: bool
    reinserted: int
    written_back: int
    overwritten: int
    audit_id: int | None
    seconds: float

    @property
    def restored(self) -> int:
        return self.reinserted + self.written_back


async def plan_restore(database_url: str, repo: Repository, key: Key | None,
                       request: RestoreRequest) -> RestorePlan:
    """Dry run: what restore_records would do now. Writes nothing (its transaction rolls back)."""
    report = await _run(database_url, repo, key, request, apply=False)
    return report.plan


async def restore_records(database_url: str, repo: Repository, key: Key | None,
                          request: RestoreRequest) -> RestoreReport:
    """Restore in one transaction, audited. Raises RestorePlanError (bad request or history),
    MissingParents (without with_parents), RestoreError (rows changed while restoring)."""
    return await _run(database_url, repo, key, request, apply=True)


async def _run(database_url: str, repo: Repository, key: Key | None, request: RestoreRequest,
               apply: bool) -> RestoreReport:
    started = time.perf_counter()
    history = load_history(repo, request.as_of)
    try:
        conn = await asyncpg.connect(database_url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise RestoreError(f"cannot connect to PostgreSQL to restore: {exc}") from exc
    try:
        transaction = conn.transaction(isolation="repeatable_read")
        await transaction.start()
        try:
            await conn.execute("SET LOCAL TimeZone = 'UTC'")
            report = await restore_in_transaction(conn, repo, key, history, request, apply)
        except BaseException:
            await transaction.rollback()
            raise
        if apply:
            await transaction.commit()
        else:
            await transaction.rollback()
    except asyncpg.SerializationError as exc:
        raise RestoreError("rows of the restore changed while it ran; nothing was restored, "
                           "run it again") from exc
    except asyncpg.PostgresError as exc:
        raise RestoreError(f"restore failed in PostgreSQL, nothing was restored: {exc}") from exc
    finally:
        await conn.close()
    return replace(report, seconds=round(time.perf_counter() - started, 3))


async def restore_in_transaction(conn: asyncpg.Connection, repo: Repository, key: Key | None,
                                 history: History, request: RestoreRequest, apply: bool,
                                 depth: int = 0) -> RestoreReport:
    """The restore inside the caller's transaction (parents recurse here with depth + 1)."""
    image = history.snapshot.table(request.table) if _has_table(history, request.table) else None
    if image is None:
        names = ", ".join(t.name for t in history.snapshot.tables)
        raise RestorePlanError(f"snapshot {history.snapshot.id} has no table {request.table!r}; "
                               f"it has {names}")
    live = await describe_live(conn, image)
    if request.where is not None:
        validate(request.where, live.types, live.name)
    comparison = _comparison(live, request.columns)
    temp = f"vv_asof_{depth}"
    as_of = await build_as_of(conn, repo, key, history, live, request.as_of, request.where, temp)
    candidates, matched = await _differing(conn, live, temp, request.where, comparison)
    histories, used_log = await _histories(conn, repo, key, history, live, request, comparison,
                                           set(candidates))
    decisions: dict[Action, list[KeyTuple]] = {a: [] for a in Action}
    diffs: list[RowDiff] = []
    conflicts: list[RowDiff] = []
    for row_key, (at_t, now) in candidates.items():
        decision = decide(at_t, histories.get(row_key), now, comparison)
        decisions[decision.action].append(row_key)
        diff = RowDiff(dict(zip(live.primary_key, row_key, strict=True)), decision.action.value,
                       decision.reason, _diff(comparison, at_t, now))
        if decision.action == Action.CONFLICT and len(conflicts) < 100:
            conflicts.append(diff)
        if len(diffs) < request.sample_size and decision.action != Action.UNTOUCHED:
            diffs.append(diff)
    counts = Counter({a.value: len(keys) for a, keys in decisions.items()})
    counts[Action.UNTOUCHED.value] = matched - sum(counts[a] for a in
                                                   (Action.REINSERT, Action.WRITE_BACK, Action.CONFLICT))
    overwrite = request.on_conflict == ConflictPolicy.OVERWRITE
    reinsert = decisions[Action.REINSERT] + ([k for k in decisions[Action.CONFLICT]
                                               if candidates[k][1] is None] if overwrite else [])
    write_back = decisions[Action.WRITE_BACK] + ([k for k in decisions[Action.CONFLICT]
                                                  if candidates[k][1] is not None] if overwrite else [])
    await _stage_keys(conn, live, temp, reinsert, write_back)
    parents = await restore_parents(conn, live, temp, request, history, repo, key, depth,
                                    restore_in_transaction)
    plan = RestorePlan(
        table=live.name, as_of=request.as_of,
        predicate=render(request.where) if request.where is not None else None,
        snapshot_id=history.snapshot.id, segments=len(history.segments),
        chunks_read=as_of.chunks_read, chunks_total=as_of.chunks_total, matched=matched,
        counts=dict(counts), sample=tuple(diffs), conflicts=tuple(conflicts),
        conflicts_total=len(decisions[Action.CONFLICT]), used_live_log=used_log, parents=parents)
    overwritten = len(decisions[Action.CONFLICT]) if overwrite else 0
    if not apply:
        return RestoreReport(plan, False, 0, 0, 0, None, 0.0)
    await _apply(conn, live, temp, comparison)
    audit_id = await write_audit(conn, request, plan, as_of_image=as_of, reinserted=len(reinsert),
                                 written_back=len(write_back)) if depth == 0 else None
    return RestoreReport(plan, True, len(reinsert), len(write_back), overwritten, audit_id, 0.0)


def _has_table(history: History, name: str) -> bool:
    return any(t.name == name for t in history.snapshot.tables)


def _comparison(live: LiveTable, columns: tuple[str, ...] | None) -> Comparison:
    if columns is not None:
        unknown = [c for c in columns if c not in live.columns]
        if unknown:
            raise RestorePlanError(f"table {live.name} has no column(s) {', '.join(unknown)}; its columns "
                                   f"are {', '.join(live.columns)}")
        keys = [c for c in columns if c in live.primary_key]
        if keys:
            raise RestorePlanError(f"--columns cannot include the primary key ({', '.join(keys)}); "
                                   "rows are matched by it")
    chosen = columns or tuple(c for c in live.columns if c not in live.primary_key)
    instants = frozenset(c for c in chosen if live.types[c] == "timestamp with time zone")
    return Comparison(tuple(chosen), instants)


def _diff(comparison: Comparison, at_t: Row, now: Row | None) -> dict[str, tuple[Any, Any]]:
    if now is None:
        return {name: (None, at_t.get(name)) for name in comparison.columns}
    return {name: (now.get(name), at_t.get(name)) for name in comparison.differing(at_t, now)}


async def _differing(conn: asyncpg.Connection, live: LiveTable, temp: str, where: Expr | None,
                     comparison: Comparison) -> tuple[dict[KeyTuple, tuple[Row, Row | None]], int]:
    """Rows at T matching `where` that are missing now or differ in the compared columns, and how
    many rows at T matched at all."""
    condition, params = to_sql(where, live.types, alias="a") if where is not None else ("TRUE", [])
    join = " AND ".join(f"l.{quote_identifier(c)} = a.{quote_identifier(c)}" for c in live.primary_key)
    mine = ", ".join(f"a.{quote_identifier(c)}" for c in comparison.columns)
    theirs = ", ".join(f"l.{quote_identifier(c)}" for c in comparison.columns)
    first_key = quote_identifier(live.primary_key[0])
    matched = await conn.fetchval(
        f"SELECT count(*) FROM {quote_identifier(temp)} a WHERE {condition}", *params)
    rows = await conn.fetch(
        f"SELECT to_jsonb(a)::text AS at_t, CASE WHEN l.{first_key} IS NULL THEN NULL "
        f"ELSE to_jsonb(l)::text END AS now FROM {quote_identifier(temp)} a "
        f"LEFT JOIN {live.qualified} l ON {join} WHERE ({condition}) "
        f"AND (l.{first_key} IS NULL OR ROW({mine}) IS DISTINCT FROM ROW({theirs}))", *params)
    found: dict[KeyTuple, tuple[Row, Row | None]] = {}
    for row in rows:
        at_t = json.loads(row["at_t"])
        found[live.key_of(at_t)] = (at_t, json.loads(row["now"]) if row["now"] else None)
    return found, int(matched)


async def _histories(conn: asyncpg.Connection, repo: Repository, key: Key | None, history: History,
                     live: LiveTable, request: RestoreRequest, comparison: Comparison,
                     wanted: set[KeyTuple]) -> tuple[dict[KeyTuple, RowHistory], bool]:
    """Per candidate row, its changes after T: shipped ones, then the live log's unshipped ones."""
    histories: dict[KeyTuple, RowHistory] = {}
    seen: set[int] = set()
    if not wanted:
        return histories, False

    def add(change: Change) -> None:
        seen.add(change.position)
        keys = [live.key_of(change.key)] if change.key is not None else list(wanted)  # TRUNCATE
        for row_key in keys:
            if row_key in wanted:
                previous = histories.get(row_key)
                histories[row_key] = previous.then(change) if previous else \
                    RowHistory.start(change, comparison)

    for change in shipped_changes(repo, history.segments, live.name, key, after=request.as_of):
        add(change)
    unshipped = await live_changes(conn, live.name, request.as_of) if request.use_live_log else None
    for change in unshipped or []:
        if change.position not in seen:
            add(change)
    return histories, unshipped is not None


async def _stage_keys(conn: asyncpg.Connection, live: LiveTable, temp: str, reinsert: list[KeyTuple],
                      write_back: list[KeyTuple]) -> None:
    """Mark the rows to act on in the temp table's companion `<temp>_act` (key, action)."""
    keys = ", ".join(quote_identifier(c) for c in live.primary_key)
    act = quote_identifier(f"{temp}_act")
    await conn.execute(f"CREATE TEMP TABLE {act} ON COMMIT DROP AS SELECT {keys}, ''::text AS action "
                       f"FROM {quote_identifier(temp)} WITH NO DATA")
    marked = [{**dict(zip(live.primary_key, k, strict=True)), "action": "reinsert"} for k in reinsert]
    marked += [{**dict(zip(live.primary_key, k, strict=True)), "action": "write_back"} for k in write_back]
    if marked:
        await conn.execute(f"INSERT INTO {act} SELECT * FROM "
                           f"jsonb_populate_recordset(NULL::{act}, $1::jsonb)",
                           json.dumps(marked))


async def _apply(conn: asyncpg.Connection, live: LiveTable, temp: str, comparison: Comparison) -> None:
    table = quote_identifier(temp)
    act = quote_identifier(f"{temp}_act")
    keys = ", ".join(quote_identifier(c) for c in live.primary_key)
    columns = ", ".join(quote_identifier(c) for c in live.columns)
    picked = ", ".join(f"a.{quote_identifier(c)}" for c in live.columns)
    await conn.execute(
        f"INSERT INTO {live.qualified} ({columns}) OVERRIDING SYSTEM VALUE SELECT {picked} FROM {table} a "
        f"JOIN {act} k USING ({keys}) WHERE k.action = 'reinsert' ORDER BY {keys}")
    sets = ", ".join(f"{quote_identifier(c)} = a.{quote_identifier(c)}" for c in comparison.columns)
    match = " AND ".join(f"l.{quote_identifier(c)} = a.{quote_identifier(c)}" for c in live.primary_key)
    await conn.execute(
        f"UPDATE {live.qualified} l SET {sets} FROM {table} a JOIN {act} k USING ({keys}) "
        f"WHERE k.action = 'write_back' AND {match}")
