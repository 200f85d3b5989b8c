"""Point-in-time restore of lost records: rebuild rows as at T, compare with live rows, act per row.

`plan_restore` is the dry run (counts per action and a sample diff, nothing written);
`restore_records` does the same in ONE transaction and applies it, audited. History is one
ordered sequence: the repository's snapshot and segments, then the live change log when it is
there (see backup/restore/source.py), for the rows at T and for the changes after T alike.
A second run finds every restored row equal to its image at T and restores nothing.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from backup.restore import plans
from backup.restore.apply import apply_actions
from backup.restore.asof import AsOfImage, LiveTable, build_as_of, describe_live
from backup.restore.audit import write_audit
from backup.restore.classify import Classified, classify, count_decisions, load_changes_after, reason
from backup.restore.decision import Action, Comparison
from backup.restore.errors import RestoreError, RestorePlanError
from backup.restore.ordering import ordering_warnings
from backup.restore.parents import restore_parents
from backup.restore.plans import PlanReuse, Taken
from backup.restore.predicate import Expr, render
from backup.restore.predicate_sql import quote_identifier, validate
from backup.restore.source import History, connect, drain_live_log, drains_live_log, open_history
from backup.storage.change import Row
from backup.storage.codec import Key
from backup.storage.repository import Repository

MAX_CONFLICTS_LISTED = 100
_TEMP_NAMES = itertools.count()
# Memory for the restore's own session, set before its first temporary table (temp_buffers takes
# effect only then). With the defaults (8 MB, 4 MB) the 266,561-row restore at 1M spilled its temp
# tables, sorts and the capture trigger's join of the old and new rows to disk. A restore is one
# session at a time (an admin's), so the server can spare this once. No JIT: the capture trigger's
# statement for the write-back is costed as a 355M-row join (it pairs old and new rows by key), so
# the server compiled it with inlining and optimisation: 0.77 s of the 266,561-row restore at 1M
# (EXPLAIN ANALYZE), and 0.27 s for classify, for queries that run once over rows already in memory.
_SESSION_MEMORY = "SET LOCAL temp_buffers = '256MB'; SET LOCAL work_mem = '64MB'; SET LOCAL jit = off"


@dataclass(frozen=True)
class RestoreStep:
    """A step of restore_records starting: `done` of `total` steps are behind it."""

    name: str
    words: str
    done: int
    total: int

    @property
    def fraction(self) -> float:
        return self.done / self.total


# The steps of an applied restore, in order (a dry run stops before "apply").
STEPS = (("rebuild_as_of", "rebuilding the rows as at T from the snapshot and segments"),
         ("changes_after_t", "reading the changes made after T"),
         ("classify", "deciding per row: re-insert, write back, conflict or untouched"),
         ("parents", "checking parent rows"),
         ("apply", "writing the restored rows"),
         ("audit", "writing the audit entry and committing"))


class ConflictPolicy(StrEnum):
    SKIP = "skip"
    OVERWRITE = "overwrite"


@dataclass(frozen=True)
class RestoreRequest:
    """What to restore. where: a parsed predicate (see backup.restore.predicate) over the rows at T.
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
    # An apply takes a dry run's saved plan when it is still valid (backup/restore/plans.py);
    # False plans afresh.
    reuse_plan: bool = True
    # Told (from the restore's thread) as each step of the top-level restore starts: a job
    # shows it as progress. Not part of what is restored, so not compared or shown.
    on_step: Callable[[RestoreStep], None] | None = field(default=None, compare=False, repr=False)


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
    warnings: tuple[str, ...] = ()

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
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, for benchmarks
    reuse: PlanReuse | None = None  # the dry run's saved plan: saved, reused, or why not

    @property
    def restored(self) -> int:
        return self.reinserted + self.written_back


async def plan_restore(database_url: str, repo: Repository, key: Key | None,
                       request: RestoreRequest) -> RestorePlan:
    """Dry run: what restore_records would do now. Restores nothing; it saves its plan (rows at T
    and decisions, in the backup schema: backup/restore/plans.py) for the apply that follows."""
    return (await dry_run(database_url, repo, key, request)).plan


async def dry_run(database_url: str, repo: Repository, key: Key | None,
                  request: RestoreRequest) -> RestoreReport:
    """plan_restore with its report: the plan, the seconds and the seconds per step (applied
    False, nothing restored; the saved plan in `reuse`)."""
    return await _run(database_url, repo, key, request, apply=False)


async def restore_records(database_url: str, repo: Repository, key: Key | None,
                          request: RestoreRequest) -> RestoreReport:
    """Restore in one transaction, audited. Raises RestorePlanError (bad request or history),
    MissingParents (without with_parents), RestoreError (rows changed while restoring)."""
    return await _run(database_url, repo, key, request, apply=True)


async def _run(database_url: str, repo: Repository, key: Key | None, request: RestoreRequest,
               apply: bool) -> RestoreReport:
    started = time.perf_counter()
    conn = await connect(database_url, "to restore")
    try:
        drains = request.use_live_log and await drains_live_log(conn)
        transaction = conn.transaction(isolation="repeatable_read")
        await transaction.start()
        try:
            await conn.execute(_SESSION_MEMORY)  # before any temp table, hence before the drain's
            if drains:
                await drain_live_log(conn, database_url)
            history = await open_history(conn, repo, key, request.as_of, request.use_live_log)
            await conn.execute("SET LOCAL TimeZone = 'UTC'")
            report = await restore_in_transaction(conn, repo, key, history, request, apply)
        except BaseException:
            await transaction.rollback()
            raise
        # A dry run commits only its saved plan (its own writes were rolled back to a savepoint).
        if apply or (report.reuse is not None and report.reuse.status == "saved"):
            await transaction.commit()
        else:
            await transaction.rollback()
    except asyncpg.SerializationError as exc:
        raise RestoreError("rows of the restore changed while it ran; nothing was restored, "
                           "run it again") from exc
    except asyncpg.PostgresError as exc:
        raise RestoreError("restore failed in PostgreSQL, nothing was restored: "
                           f"{describe_failure(exc)}") from exc
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
    temp = f"vv_asof_{next(_TEMP_NAMES)}"  # parents restore in the same transaction
    clock = _Clock(request.on_step if depth == 0 else None)
    plan_parts = await plans.parts(conn, repo, key, history, live, _request_parts(request)) \
        if depth == 0 else None
    reuse: PlanReuse | None = None
    taken: Taken | None = None
    if plan_parts is not None and apply:
        found = await _take_plan(conn, key, live, temp, request, plan_parts)
        taken, reuse = (found, PlanReuse("reused", found.plan_id)) if isinstance(found, Taken) \
            else (None, found)
    if taken is not None:
        as_of, classified, sample, conflicts = _from_saved(taken.data, temp)
        clock.lap("rebuild_as_of")
        clock.lap("changes_after_t")
        clock.lap("classify")
    else:
        as_of = await build_as_of(conn, repo, key, history, live, request.as_of, request.where, temp)
        clock.lap("rebuild_as_of")
        await load_changes_after(conn, repo, key, history, live, request.as_of, temp)
        clock.lap("changes_after_t")
        overwrite = request.on_conflict == ConflictPolicy.OVERWRITE
        classified = await classify(conn, live, temp, request.where, comparison, overwrite)
        clock.lap("classify")
        sample = await _rows(conn, live, temp, comparison, "decided <> 'conflict'", request.sample_size)
        conflicts = await _rows(conn, live, temp, comparison, "decided = 'conflict'", MAX_CONFLICTS_LISTED)
    counts = dict(classified.counts)
    counts[Action.UNTOUCHED.value] = classified.matched - sum(classified.counts.values())
    saving = plan_parts is not None and not apply
    if saving:
        await conn.execute("SAVEPOINT vv_before_parents")  # a dry run's parents are rolled back
    parents = await restore_parents(conn, live, temp, request, history, repo, key, depth,
                                    restore_in_transaction)
    clock.lap("parents")
    plan = RestorePlan(
        table=live.name, as_of=request.as_of,
        predicate=render(request.where) if request.where is not None else None,
        snapshot_id=history.snapshot.id, segments=len(history.segments),
        chunks_read=as_of.chunks_read, chunks_total=as_of.chunks_total, matched=classified.matched,
        counts=counts, sample=sample, conflicts=conflicts,
        conflicts_total=counts[Action.CONFLICT.value], used_live_log=history.live_log, parents=parents,
        warnings=_warnings(history, request.as_of)
        + tuple(await ordering_warnings(conn, history, live.name, request.as_of)))
    if not apply:
        if saving and plan_parts is not None:
            await conn.execute("ROLLBACK TO SAVEPOINT vv_before_parents")
            reuse = await plans.save(conn, key, live, temp, plan_parts, _to_saved(as_of, classified, plan))
            clock.lap("save_plan", tell=False)
        return RestoreReport(plan, False, 0, 0, 0, None, 0.0, clock.laps, reuse)
    applied = await apply_actions(conn, live, temp, comparison)
    clock.lap("apply")
    overwritten = classified.overwritten
    if applied.conflicts_found:
        plan, overwritten = await _with_conflicts_found(conn, live, temp, comparison, plan,
                                                        classified.matched)
    audit_id = await write_audit(conn, request, plan, as_of_image=as_of, reinserted=applied.reinserted,
                                 written_back=applied.written_back) if depth == 0 else None
    return RestoreReport(plan, True, applied.reinserted, applied.written_back, overwritten, audit_id, 0.0,
                         clock.laps, reuse)


def _request_parts(request: RestoreRequest) -> dict[str, Any]:
    """What of the request a saved plan depends on (not who asks, nor progress reporting)."""
    return {"table": request.table, "as_of": request.as_of.isoformat(),
            "where": render(request.where) if request.where is not None else None,
            "columns": list(request.columns) if request.columns is not None else None,
            "on_conflict": request.on_conflict.value, "with_parents": request.with_parents,
            "use_live_log": request.use_live_log, "sample_size": request.sample_size}


async def _take_plan(conn: asyncpg.Connection, key: Key | None, live: LiveTable, temp: str,
                     request: RestoreRequest, plan_parts: dict[str, Any]) -> Taken | PlanReuse:
    if not request.reuse_plan:
        return PlanReuse("not reused", reason="asked to plan afresh")
    if not request.use_live_log:
        return PlanReuse("not reused", reason="without the live change log nothing tells whether "
                         f"{live.name} changed since the dry run")
    return await plans.take(conn, key, live, temp, plan_parts)


def _to_saved(as_of: AsOfImage, classified: Classified, plan: RestorePlan) -> dict[str, Any]:
    """What an apply needs of a dry run besides its rows (parents and warnings are redone)."""
    def diffs(rows: tuple[RowDiff, ...]) -> list[dict[str, Any]]:
        return [{"key": r.key, "action": r.action, "reason": r.reason,
                 "columns": {c: list(v) for c, v in r.columns.items()}} for r in rows]
    return {"image": {"chunks_read": as_of.chunks_read, "chunks_total": as_of.chunks_total,
                      "rows_loaded": as_of.rows_loaded, "changes_replayed": as_of.changes_replayed},
            "matched": classified.matched, "counts": classified.counts, "overwritten": classified.overwritten,
            "sample": diffs(plan.sample), "conflicts": diffs(plan.conflicts)}


def _from_saved(data: dict[str, Any], temp: str) -> tuple[AsOfImage, Classified, tuple[RowDiff, ...],
                                                         tuple[RowDiff, ...]]:
    def diffs(rows: list[dict[str, Any]]) -> tuple[RowDiff, ...]:
        return tuple(RowDiff(r["key"], r["action"], r["reason"],
                             {c: (v[0], v[1]) for c, v in r["columns"].items()}) for r in rows)
    image = data["image"]
    as_of = AsOfImage(temp, int(image["chunks_read"]), int(image["chunks_total"]), int(image["rows_loaded"]),
                      int(image["changes_replayed"]))
    classified = Classified(int(data["matched"]), {k: int(v) for k, v in data["counts"].items()},
                            int(data["overwritten"]))
    return as_of, classified, diffs(data["sample"]), diffs(data["conflicts"])


async def _with_conflicts_found(conn: asyncpg.Connection, live: LiveTable, temp: str, comparison: Comparison,
                                plan: RestorePlan, matched: int) -> tuple[RestorePlan, int]:
    """The plan after apply_actions turned violations into conflicts (those rows were not written,
    so their diff against the live row still holds)."""
    counts, overwritten = await count_decisions(conn, temp)
    counts[Action.UNTOUCHED.value] = matched - sum(counts.values())
    found = await _rows(conn, live, temp, comparison, "decided = 'conflict' AND action = 'skip'",
                        MAX_CONFLICTS_LISTED)
    keys = {json.dumps(c.key, sort_keys=True) for c in found}
    merged = {json.dumps(c.key, sort_keys=True): c for c in (*plan.conflicts, *found)}
    conflicts = tuple(merged[k] for k in sorted(merged))[:MAX_CONFLICTS_LISTED]
    sample = tuple(r for r in plan.sample if json.dumps(r.key, sort_keys=True) not in keys)
    return replace(plan, counts=counts, conflicts=conflicts, sample=sample,
                   conflicts_total=counts[Action.CONFLICT.value]), overwritten


def describe_failure(exc: asyncpg.PostgresError) -> str:
    """A PostgreSQL failure in words that carry no row value: PostgreSQL's message and detail can
    quote them ("Key (national_id)=(...) already exists"), and this text reaches job records and
    logs. The SQLSTATE and the object names are enough to act on."""
    names = [f"{what} {value}" for what, value in (
        ("table", getattr(exc, "table_name", None)), ("column", getattr(exc, "column_name", None)),
        ("constraint", getattr(exc, "constraint_name", None))) if value]
    where = f" on {', '.join(names)}" if names else ""
    return f"{type(exc).__name__} (SQLSTATE {exc.sqlstate}){where}"


def _warnings(history: History, as_of: datetime) -> tuple[str, ...]:
    found = []
    if history.gap_after is not None:
        found.append(f"changes after {history.gap_after.isoformat()} are missing from the history (a segment "
                     "is missing and the live change log does not reach back to it): rows changed "
                     "legitimately after then may be taken for damage; check the sample and conflicts")
    elif not history.live_log and history.reached < as_of:
        found.append(f"the repository's history ends at {history.reached.isoformat()} and the live change "
                     "log was not read: changes after then are unknown, so rows are rebuilt as they were "
                     "then and later legitimate changes may be taken for damage")
    return tuple(found)


async def _rows(conn: asyncpg.Connection, live: LiveTable, temp: str, comparison: Comparison,
                which: str, limit: int) -> tuple[RowDiff, ...]:
    """Up to `limit` classified rows (in key order) with their column-by-column diff."""
    keys = ", ".join(quote_identifier(c) for c in live.primary_key)
    join = " AND ".join(f"l.{quote_identifier(c)} = a.{quote_identifier(c)}" for c in live.primary_key)
    ordered = ", ".join(f"k.{quote_identifier(c)}" for c in live.primary_key)
    rows = await conn.fetch(
        f"SELECT to_jsonb(a)::text AS at_t, CASE WHEN k.gone THEN NULL ELSE to_jsonb(l)::text END AS now, "
        f"k.decided, k.gone, k.first_position, k.changes, k.last_position, k.taken_by "
        f"FROM {quote_identifier(temp + '_act')} k JOIN {quote_identifier(temp)} a USING ({keys}) "
        f"LEFT JOIN {live.qualified} l ON {join} WHERE {which} ORDER BY {ordered} LIMIT {int(limit)}")
    found = []
    for row in rows:
        at_t = json.loads(row["at_t"])
        now = json.loads(row["now"]) if row["now"] else None
        found.append(RowDiff(
            {c: at_t[c] for c in live.primary_key}, row["decided"],
            reason(row["decided"], row["gone"], row["first_position"], row["changes"], row["last_position"],
                   row["taken_by"]),
            _diff(comparison, at_t, now)))
    return tuple(found)


class _Clock:
    """Times each step and tells `on_step` which one starts next (the first at once)."""

    def __init__(self, on_step: Callable[[RestoreStep], None] | None = None) -> None:
        self.laps: dict[str, float] = {}
        self.last = time.perf_counter()
        self.on_step = on_step
        self._tell(0)

    def lap(self, name: str, tell: bool = True) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 3)
        self.last = now
        if tell:
            self._tell(len(self.laps))

    def _tell(self, done: int) -> None:
        if self.on_step is not None and done < len(STEPS):
            name, words = STEPS[done]
            self.on_step(RestoreStep(name, words, done, len(STEPS)))


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
