"""`vaxvault backup init | run | list | verify | prune | schedule`: thin wrappers over backup/."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime

from api.backup_config import backup_config
from api.cli.backup_list import DEFAULT_LAST, list_output
from api.cli.output import add_json_flag, emit, is_terminal, whole_number
from api.errors import VaxvaultError
from api.settings import Settings
from backup.capture.triggers import CaptureInstall, install
from backup.config import DEFAULT_CHUNK_ROWS, DEFAULT_WORKERS, BackupConfig
from backup.errors import BackupError
from backup.prune import prune
from backup.runner import LOCK_KEY, connect, run_backup
from backup.schedule import DEFAULT_FULL, DEFAULT_INCREMENTAL, Schedule, run_schedule, summary_line
from backup.stages import Stage, build_stages
from backup.storage.file import FileRepository
from backup.verify import verify


class BackupCommandError(VaxvaultError):
    """A backup operation failed; the message comes from backup's own error tree."""


def register(commands: argparse._SubParsersAction) -> None:
    backup = commands.add_parser("backup", help="change capture, snapshots, segments, verify, retention")
    actions = backup.add_subparsers(dest="backup_command", metavar="ACTION")
    actions.required = True

    init = actions.add_parser("init", help="install change capture (idempotent)")
    init.add_argument("--tables", type=_table_list, help="comma-separated tables (default: all with a "
                      "primary key but audit_log and vaxvault_migrations)")
    init.set_defaults(handler=run_init)

    run = actions.add_parser("run", help="take a backup now")
    kind = run.add_mutually_exclusive_group()
    kind.add_argument("--full", action="store_true", help="full snapshot (and the segment up to it)")
    kind.add_argument("--incremental", action="store_true", help="changes since the last run (default)")
    run.add_argument("--workers", type=whole_number(1), default=DEFAULT_WORKERS,
                     help=f"parallel COPY sessions for a full snapshot (default {DEFAULT_WORKERS})")
    run.add_argument("--chunk-rows", type=whole_number(1), default=DEFAULT_CHUNK_ROWS,
                     help=f"rows per snapshot chunk (default {DEFAULT_CHUNK_ROWS})")
    run.set_defaults(handler=run_run)

    listing = actions.add_parser("list", help="per stage: units held, totals, oldest and newest; then "
                                 "the newest units with their state at each stage")
    listing.add_argument("--all", action="store_true", help="every snapshot and segment (grows with "
                         "the history)")
    listing.add_argument("--last", type=whole_number(0), default=DEFAULT_LAST, metavar="N",
                         help=f"how many of the newest units to show (default {DEFAULT_LAST})")
    listing.set_defaults(handler=run_list)

    check = actions.add_parser("verify", help="check every object at every stage (exit 1 on a problem)")
    check.add_argument("id", nargs="?", help="one snapshot or segment id (default: everything)")
    check.add_argument("--deep", action="store_true", help="decrypt, decompress and re-count rows")
    check.set_defaults(handler=run_verify)

    prune = actions.add_parser("prune", help="delete what no kept point in time needs")
    prune.add_argument("--keep-full", type=int, required=True, metavar="N")
    prune.add_argument("--keep-days", type=float, required=True, metavar="D")
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    prune.set_defaults(handler=run_prune)

    schedule = actions.add_parser("schedule", help="run backups on a schedule until stopped")
    schedule.add_argument("--full", metavar="CRON", help="default: VAXVAULT_BACKUP_SCHEDULE_FULL, "
                          f"else '{DEFAULT_FULL}'")
    schedule.add_argument("--incremental", metavar="CRON", help="default: "
                          f"VAXVAULT_BACKUP_SCHEDULE_INCREMENTAL, else '{DEFAULT_INCREMENTAL}'")
    schedule.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    schedule.set_defaults(handler=run_schedule_command)

    for parser in (init, run, listing, check, prune, schedule):
        add_json_flag(parser)



def _table_list(value: str) -> tuple[str, ...]:
    tables = tuple(t.strip() for t in value.split(",") if t.strip())
    if not tables:
        raise argparse.ArgumentTypeError(f"{value!r} names no table")
    return tables



def _stages(config: BackupConfig) -> list[Stage]:
    return build_stages(FileRepository(config.spool_dir), config.primary_url, config.replica_urls,
                        config.s3_endpoint_url)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except BackupError as exc:
        raise BackupCommandError(str(exc)) from exc


def run_init(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> CaptureInstall:
        url = settings.require_database_url()
        conn = await connect(url)
        try:
            # A run between its drain and its cut, or a second init, must not see capture change
            # under it (a switch back empties the drain's progress row): wait for the backup lock,
            # held until this session closes.
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
            return await install(conn, args.tables, mode=settings.backup_capture, database_url=url)
        finally:
            await conn.close()

    with _translated():
        result = asyncio.run(go())
    for warning in result.warnings:  # loud, but not fatal: capture still works, order is a bound
        print(f"WARNING: {warning}", file=sys.stderr)
    emit(args, f"change capture ({result.mode}) installed on {len(result.tables)} table(s): "
         f"{', '.join(result.tables)}",
         {"tables": list(result.tables), "watermark": result.watermark, "warnings": list(result.warnings),
          "mode": result.mode})
    return 0


def _progress() -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    if not is_terminal():
        return None, lambda: None
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task("snapshot rows", total=None)
    bar.start()
    return (lambda rows, _size: bar.advance(task, rows)), bar.stop


def run_run(args: argparse.Namespace, settings: Settings) -> int:
    config = replace(backup_config(settings), workers=args.workers, chunk_rows=args.chunk_rows)
    progress, done = _progress() if args.full and not args.json else (None, lambda: None)
    try:
        with _translated():
            summary = asyncio.run(run_backup(config, full=args.full, progress=progress))
    finally:
        done()
    emit(args, summary_line(summary), asdict(summary))
    return 0


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    config = backup_config(settings)
    with _translated():
        text, data = list_output(_stages(config), config.key, args.all, args.last)
    emit(args, text, data)
    return 0


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    config = backup_config(settings)
    with _translated():
        report = verify(_stages(config), args.id, deep=args.deep, key=config.key)
    data = {"units": report.units, "objects": report.objects, "ok": report.ok,
            "problems": [asdict(p) for p in report.problems]}
    if report.ok:
        emit(args, f"verified {report.objects} object(s) of {report.units} unit(s) at every stage"
             + (" (deep)" if args.deep else ""), data)
        return 0
    if args.json:
        emit(args, "", data)
    else:
        for problem in report.problems:
            print(problem)
    raise BackupCommandError(f"verify found {len(report.problems)} problem(s) in {report.objects} object(s); "
                             f"first: {report.problems[0]}")


def run_prune(args: argparse.Namespace, settings: Settings) -> int:
    config = backup_config(settings)
    with _translated():
        stages = _stages(config)
        plans, removed = asyncio.run(prune(config.database_url, stages, args.keep_full, args.keep_days,
                                           datetime.now(UTC), dry_run=args.dry_run, key=config.key))
    snapshots = sorted({i for plan in plans.values() for i in plan.snapshots})
    segments = sorted({i for plan in plans.values() for i in plan.segments})
    verb = "would delete" if args.dry_run else "deleted"
    emit(args, f"{verb} {len(snapshots)} snapshot(s) and {len(segments)} segment(s)"
         + "".join(f"\n  snapshot {i}" for i in snapshots)
         + "".join(f"\n  segment {i}" for i in segments)
         + "".join(f"\n  at {name}: {len(plan.snapshots)} snapshot(s), {len(plan.segments)} segment(s)"
                   for name, plan in plans.items()),
         {"dry_run": args.dry_run, "snapshots": snapshots, "segments": segments,
          "stages": {name: asdict(plan) for name, plan in plans.items()}, "objects_removed": removed})
    return 0


def run_schedule_command(args: argparse.Namespace, settings: Settings) -> int:
    config = backup_config(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # one line per run, nothing else
    with _translated():
        # The same settings tell the API (and so the console) when the next runs are due.
        schedule = Schedule(
            full=args.full or settings.backup_schedule_full or DEFAULT_FULL,
            incremental=args.incremental or settings.backup_schedule_incremental
            or DEFAULT_INCREMENTAL)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port)

    async def go() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await run_schedule(config, schedule, stop)

    runs = asyncio.run(go())
    emit(args, f"scheduler stopped after {runs} run(s)", {"runs": runs})
    return 0
