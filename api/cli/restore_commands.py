"""`vaxvault restore records | find-loss | full`: thin wrappers over backup's restore functions."""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from api.backup_config import encryption_key
from api.cli.output import add_json_flag, emit, is_terminal
from api.domain.audit import diff_reads, record_operator_read
from api.domain.disaster_recovery import API_ROLE, CONNECTIONS, RegistryRestore, age, restore_registry
from api.domain.loss_admin import loss_windows, read_changes
from api.domain.restore_admin import Source
from api.errors import SettingsError, VaxvaultError
from api.settings import Settings
from backup.errors import BackupError
from backup.restore.find_loss import LossWindow
from backup.restore.full import plan_full
from backup.restore.predicate import parse
from backup.restore.records import (
    ConflictPolicy,
    RestoreReport,
    RestoreRequest,
    dry_run,
    restore_records,
)
from backup.storage.codec import Key
from backup.storage.repository import Repository, open_repository


class RestoreCommandError(VaxvaultError):
    """A restore failed or was refused; the message comes from backup's own error tree."""


def register(commands: argparse._SubParsersAction) -> None:
    restore = commands.add_parser("restore", help="find lost records and restore them as of a time")
    actions = restore.add_subparsers(dest="restore_command", metavar="ACTION")
    actions.required = True

    records = actions.add_parser("records", help="restore rows of one table as they were at T")
    records.add_argument("--as-of", type=instant, required=True, metavar="T",
                         help="ISO 8601 time with offset, e.g. 2026-11-22T02:00:00Z")
    records.add_argument("--table", required=True)
    records.add_argument("--where", metavar="PREDICATE",
                         help="SQL boolean expression over the columns as they were at T")
    records.add_argument("--columns", type=_names, help="compare and write back only these columns")
    records.add_argument("--dry-run", action="store_true", help="show counts and a sample diff only")
    records.add_argument("--on-conflict", choices=[p.value for p in ConflictPolicy], default="skip")
    records.add_argument("--with-parents", action="store_true",
                         help="also restore gone parent rows (e.g. the recipient of a dose)")
    records.add_argument("--sample", type=int, default=10, help="rows in the sample diff")
    records.add_argument("--replan", action="store_true",
                         help="plan afresh even when a dry run's saved plan is still valid")
    records.set_defaults(handler=run_records)

    loss = actions.add_parser("find-loss", help="when did rows vanish? unusual bursts of changes")
    loss.add_argument("--table", required=True)
    loss.add_argument("--since", type=instant, metavar="T")
    loss.add_argument("--until", type=instant, metavar="T")
    loss.set_defaults(handler=run_find_loss)

    full = actions.add_parser("full", help="rebuild the registry as at T in an empty database")
    full.add_argument("--as-of", type=instant_or_latest, required=True, metavar="T",
                      help="ISO 8601 time with offset, or 'latest' for as far as the history reaches")
    full.add_argument("--target-url", required=True, metavar="DSN",
                      help="an empty database (CREATE DATABASE ...); its user becomes the owner")
    full.add_argument("--jobs", type=jobs, default=CONNECTIONS, metavar="N",
                      help=f"connections that load tables and build indexes at once (default {CONNECTIONS})")
    full.set_defaults(handler=run_full)

    for parser in (records, loss, full):
        add_json_flag(parser)


def jobs(value: str) -> int:
    """A number of connections, 1 to 16 (argparse type)."""
    if not value.isdigit() or not 1 <= int(value) <= 16:
        raise argparse.ArgumentTypeError(f"expected a number of connections from 1 to 16, not {value!r}")
    return int(value)


def instant(value: str) -> datetime:
    """An ISO 8601 time with a UTC offset (argparse type)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 time; use e.g. 2026-11-22T02:00:00Z") from exc
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset; add one, e.g. {value}Z")
    return parsed


def instant_or_latest(value: str) -> datetime | None:
    """`instant`, or None for 'latest' (argparse type)."""
    return None if value == "latest" else instant(value)


def _names(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{value!r} names no column")
    return names


@contextmanager
def _translated(activity: str | None = None) -> Iterator[None]:
    """Backup errors become command errors; on a terminal, a spinner shows `activity` meanwhile."""
    try:
        if activity and is_terminal():
            from rich.console import Console

            with Console(stderr=True).status(activity):
                yield
        else:
            yield
    except BackupError as exc:
        raise RestoreCommandError(str(exc)) from exc


def _repository(settings: Settings) -> tuple[Repository, Key | None]:
    if not settings.backup_url:
        raise SettingsError("VAXVAULT_BACKUP_URL is not set; set it to the repository to restore from "
                            "(s3://bucket/prefix or file:///path)")
    key = encryption_key(settings)
    return open_repository(settings.backup_url, settings.s3_endpoint_url), key


def _operator() -> str:
    return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"


def run_records(args: argparse.Namespace, settings: Settings) -> int:
    with _translated(f"rebuilding {args.table} as of {args.as_of.isoformat()} and comparing"):
        repo, key = _repository(settings)
        request = RestoreRequest(
            table=args.table, as_of=args.as_of, where=parse(args.where) if args.where else None,
            columns=args.columns, on_conflict=ConflictPolicy(args.on_conflict),
            with_parents=args.with_parents, actor=_operator(), sample_size=args.sample,
            reuse_plan=not args.replan)
        url = settings.require_database_url()
        run = dry_run if args.dry_run else restore_records
        report = asyncio.run(run(url, repo, key, request))
        # Printed row values are reads of those people (policy.PERSONAL_PATHS), audited first.
        asyncio.run(record_operator_read(
            url, request.actor, "cli:restore records",
            diff_reads(report.plan.table, (*report.plan.sample, *report.plan.conflicts))))
    emit(args, _records_text(report), _records_json(report))
    return 0


def _records_json(report: RestoreReport) -> dict[str, Any]:
    data = asdict(report)
    data["restored"] = report.restored
    return data


def _records_text(report: RestoreReport) -> str:
    plan = report.plan
    counts = plan.counts
    lines = [
        f"restore {plan.table} as of {plan.as_of.isoformat()}"
        + (f" where {plan.predicate}" if plan.predicate else ""),
        f"  from snapshot {plan.snapshot_id} + {plan.segments} segment(s); read {plan.chunks_read} of "
        f"{plan.chunks_total} chunk(s); {plan.matched} row(s) matched at T"
        + ("" if plan.used_live_log else "; no live change log (repository only)"),
        f"  reinsert {counts.get('reinsert', 0)}, write back {counts.get('write_back', 0)}, "
        f"conflict {counts.get('conflict', 0)}, untouched {counts.get('untouched', 0)}",
    ]
    lines.extend(f"  warning: {w}" for w in plan.warnings)
    if plan.parents:
        lines.append("  parents restored: " + ", ".join(f"{t} {n}" for t, n in plan.parents.items()))
    if plan.sample:
        lines.append("sample diff (column: now -> at T):")
        for diff in plan.sample:
            key = ", ".join(f"{k}={v}" for k, v in diff.key.items())
            changed = "; ".join(f"{c}: {_show(now)} -> {_show(then)}"
                                for c, (now, then) in diff.columns.items())
            lines.append(f"  {key} {diff.action}: {changed}")
    if plan.conflicts:
        lines.append(f"conflicts ({plan.conflicts_total}, skipped unless --on-conflict overwrite):")
        lines.extend(f"  {', '.join(f'{k}={v}' for k, v in d.key.items())}: {d.reason}"
                     for d in plan.conflicts)
    if report.applied:
        audit = f" (audit entry {report.audit_id})" if report.audit_id else ""
        lines.append(f"restored {report.restored} row(s): {report.reinserted} re-inserted, "
                     f"{report.written_back} written back{audit} in {report.seconds} s")
    else:
        lines.append(f"dry run: nothing was restored (in {report.seconds} s)")
    if report.reuse is not None:
        lines.append(_reuse_text(report))
    if report.timings:
        lines.append("  seconds per step: " + ", ".join(f"{step} {seconds}"
                                                         for step, seconds in report.timings.items()))
    return "\n".join(lines)


def _reuse_text(report: RestoreReport) -> str:
    reuse = report.reuse
    assert reuse is not None
    if reuse.status == "saved":
        until = reuse.expires_at.astimezone(UTC).strftime("%H:%M:%S UTC") if reuse.expires_at else "?"
        return (f"plan {reuse.plan_id} saved until {until}: the same command without --dry-run applies it "
                "without rebuilding while the table and the repository's history stay unchanged")
    if reuse.status == "reused":
        return f"reused the dry run's plan {reuse.plan_id} (nothing it depends on changed)"
    return f"{reuse.status} a dry run's plan: {reuse.reason}"


def _show(value: Any) -> str:
    return "NULL" if value is None else str(value)


def run_find_loss(args: argparse.Namespace, settings: Settings) -> int:
    with _translated(f"reading the changes of {args.table}"):
        repo, key = _repository(settings)
        # No database URL (a total loss) still reads the segments; read_changes says what is missing.
        found = Source(settings.database_url or "", repo, key)
        read = asyncio.run(read_changes(found, args.table, args.since, args.until))
        windows = loss_windows(found, read, args.table, args.since, args.until)
    for warning in read.warnings:
        print(f"vaxvault: warning: {warning}", file=sys.stderr)
    emit(args, _loss_text(args.table, windows, read.unshipped),
         {"table": args.table, "unshipped_changes": read.unshipped, "warnings": list(read.warnings),
          "windows": [w.as_json() for w in windows]})
    return 0


def _loss_text(table: str, windows: list[LossWindow], unshipped: int) -> str:
    where = "the shipped segments and the live change log" + (
        f" ({unshipped} changes not shipped yet)" if unshipped else "")
    if not windows:
        return f"no unusual deletes, updates or truncates of {table} in {where}"
    lines = [f"read {where}",
             f"{'START':32} {'END':32} {'SIGNAL':28} {'ROWS':>8} {'TO NULL':>8} {'TXNS':>5}  EXAMPLE KEYS"]
    for w in windows:
        keys = " ".join(",".join(f"{k}={v}" for k, v in key.items()) for key in w.example_keys)
        lines.append(f"{w.start.isoformat():32} {w.end.isoformat():32} {w.signal:28} {w.count:>8} "
                     f"{w.set_to_null:>8} {w.transactions:>5}  {keys}")
    top = windows[0]
    lines.append(f"proposed: vaxvault restore records --table {table} "
                 f"--as-of {top.proposed_as_of.isoformat()} --dry-run")
    return "\n".join(lines)


def run_full(args: argparse.Namespace, settings: Settings) -> int:
    with _translated("rebuilding the registry" + (f" as of {args.as_of.isoformat()}" if args.as_of else "")):
        repo, key = _repository(settings)
        plan = plan_full(repo, key, args.as_of)
        report = asyncio.run(restore_registry(args.target_url, repo, key, plan, _operator(), args.jobs))
    now = datetime.now(UTC)
    emit(args, _full_text(report, now), _full_json(report, now))
    return 0


def _full_json(report: RegistryRestore, now: datetime) -> dict[str, Any]:
    data = asdict(report.load)
    data.update(history_reaches=report.plan.reach.reaches, history_age_seconds=round(
                    (now - report.plan.reach.reaches).total_seconds()),
                history_broken_after=report.plan.reach.broken_after,
                migrations_at_snapshot=report.migrations_at_snapshot,
                migrations_after=list(report.migrations_after), role_created=report.role_created,
                captured=list(report.captured), audit_id=report.audit_id)
    return data


def _full_text(report: RegistryRestore, now: datetime) -> str:
    load, reach = report.load, report.plan.reach
    lines = [f"the history reaches {reach.reaches.isoformat()} ({age(reach.reaches, now)} ago): rows written "
             "after it were never shipped and are gone with the lost database",
             f"restored snapshot {load.snapshot_id} + {load.segments} segment(s) as of "
             f"{load.as_of.isoformat()} in {load.seconds} s on {load.connections} connection(s)",
             f"  {'TABLE':20} {'SNAPSHOT':>9} {'LOADED':>9} {'REPLAYED':>9} {'AT T':>9}"]
    if reach.broken_after:
        lines.insert(1, f"warning: segments after {reach.broken_after.isoformat()} do not continue the "
                        "chain and were not used; run 'vaxvault backup verify'")
    if load.cleared:
        lines.insert(0, f"cleared {load.cleared} that the target held, then started again")
    lines.extend(f"  {t.table:20} {t.snapshot_rows:>9} {t.loaded_rows:>9} {t.changes_replayed:>9} "
                 f"{t.rows_at_t:>9}" for t in load.tables)
    lines.append("row counts verified against the manifest; "
                 f"{load.set_aside} keys and indexes built after loading")
    lines.append(f"schema: migrations up to the snapshot's level ({report.migrations_at_snapshot}) before "
                 "loading" + (f", then {', '.join(report.migrations_after)} on the restored rows"
                              if report.migrations_after else ""))
    if report.role_created:
        lines.append(f"created role {API_ROLE} (the server lacked it) with the API's grants")
    lines.append(f"change capture installed on {', '.join(report.captured)} with an empty log; "
                 f"audit entry {report.audit_id}")
    lines.append("next: point VAXVAULT_DATABASE_URL at the target, 'vaxvault db migrate' (nothing to do), "
                 "'vaxvault serve', and 'vaxvault backup run --full' to start a new backup chain")
    return "\n".join(lines)
