"""Restore of lost rows, the incident this project exists for, on the scratch copy that
`vaxvault backup run --full` just snapshotted:

1. T = now (after the snapshot); 2. damage: NULL the administered_on of the lost set of dose-1
rows (266,561 at 1M recipients and above; scaled down with the table below that) and ship the
damage with an incremental run; 3. measure `vaxvault restore records --dry-run` and the restore
itself, planning again (`--replan`); 4. check that no lost row is still NULL; 5. the same incident
again, restored after its dry run, reusing the dry run's plan (what an operator does).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.embedded_postgres import EmbeddedPostgres
from bench.cluster import admin, drop_database
from bench.process import CommandFailed, Measured, run_pipeline
from bench.progress import say
from bench.server import VAXVAULT
from bench.snapshot import WORK, Scratch, SnapshotResult, vaxvault

LOST_ROWS = 266_561
FULL_SCALE = 1_000_000


def lost_count(recipients: int) -> int:
    """The lost set: the incident's 266,561 rows, scaled down for tables under 1M recipients."""
    return LOST_ROWS if recipients >= FULL_SCALE else LOST_ROWS * recipients // FULL_SCALE


def lost_rows(cluster: EmbeddedPostgres, scratch: Scratch | None,
              recipients: int) -> list[SnapshotResult]:
    lost = lost_count(recipients)
    if scratch is None:
        return [SnapshotResult("vaxvault restore records", "", False,
                               note="needs the backup branch (no snapshot to restore from)")]
    url = scratch.env["VAXVAULT_DATABASE_URL"]
    try:
        last_id = int(str(admin(url, f"SELECT id FROM doses WHERE dose_number = 1 ORDER BY id "
                                     f"OFFSET {lost - 1} LIMIT 1")))
        where = f"dose_number = 1 AND id <= {last_id}"
        # First the restore on its own (--replan: it plans again, as it did before dry runs saved
        # their plans; the figure set against pg_restore), then the same incident again, restored
        # as an operator does it: a dry run, then the apply that reuses the dry run's plan.
        cold = _incident(scratch, url, where, replan=True, check_again=True)
        warm = _incident(scratch, url, where, replan=False, check_again=False)
    except CommandFailed as exc:
        return [SnapshotResult("vaxvault restore records", "", False, note=str(exc)[:300])]
    finally:
        drop_database(cluster, scratch.name)
    plan = cold.outcome["plan"]
    note = (f"{cold.damaged:,} rows lost, {cold.outcome['restored']:,} restored "
            f"(counts {plan['counts']}; read {plan['chunks_read']} of {plan['chunks_total']} "
            f"chunks), {cold.still_null} still NULL after; a second dry run plans {cold.again}; "
            f"seconds per step {cold.outcome.get('timings', {})}")
    say(f"restore: {cold.restore.seconds} s (dry run {cold.dry.seconds} s); {note}")
    warm_note = (f"the same incident again, after its dry run ({warm.dry.seconds} s): "
                 f"{warm.outcome['restored']:,} restored, {warm.still_null} still NULL after; "
                 f"plan {(warm.outcome.get('reuse') or {}).get('status', '?')}; "
                 f"seconds per step {warm.outcome.get('timings', {})}")
    say(f"restore after its dry run: {warm.restore.seconds} s; {warm_note}")
    return [
        SnapshotResult("backup run --incremental (ships the damage)", "vaxvault backup run", True,
                       cold.shipped.seconds, None, cold.shipped.peak_rss_mib),
        SnapshotResult("vaxvault restore records --dry-run", f"--where \"{where}\"", True,
                       cold.dry.seconds, None, cold.dry.peak_rss_mib),
        SnapshotResult("vaxvault restore records", f"--as-of T --table doses --where \"{where}\"",
                       True, cold.restore.seconds, None, cold.restore.peak_rss_mib,
                       note=note),
        SnapshotResult("vaxvault restore records, after its dry run",
                       "the same incident, dry run then restore", True, warm.restore.seconds, None,
                       warm.restore.peak_rss_mib, note=warm_note),
    ]


@dataclass(frozen=True)
class Incident:
    damaged: int  # rows with administered_on NULL after the damage
    shipped: Measured  # the incremental run that ships it
    dry: Measured
    restore: Measured
    outcome: dict[str, Any]  # the restore's --json report
    still_null: int  # lost rows still NULL after the restore
    again: dict[str, int] | None  # a second dry run's counts (with check_again)


def _incident(scratch: Scratch, url: str, where: str, replan: bool, check_again: bool) -> Incident:
    """Take T, lose the rows of `where` (administered_on NULL), ship the damage, dry-run and
    restore as of T (`replan`: the restore plans again instead of reusing the dry run's plan;
    `check_again`: then a second dry run, which should find nothing left to restore)."""
    time.sleep(1.0)
    as_of = datetime.now(UTC).isoformat(timespec="seconds")
    time.sleep(1.5)
    admin(url, f"UPDATE doses SET administered_on = NULL WHERE {where}")
    damaged = int(str(admin(url, "SELECT count(*) FROM doses WHERE administered_on IS NULL")))
    say(f"damaged {damaged:,} dose-1 rows; restoring as of {as_of}")
    shipped = run_pipeline([[str(VAXVAULT), "backup", "run", "--incremental"]], env=scratch.env)
    base = ["restore", "records", "--as-of", as_of, "--table", "doses", "--where", where]
    dry = run_pipeline([[str(VAXVAULT), *base, "--dry-run", "--json"]], env=scratch.env)
    report = WORK / "restore.json"
    restore = run_pipeline([[str(VAXVAULT), *base, *(["--replan"] if replan else []), "--json"]],
                           report, env=scratch.env)
    outcome = json.loads(report.read_text())
    left = int(str(admin(url, f"SELECT count(*) FROM doses WHERE {where} AND administered_on IS NULL")))
    again = (json.loads(vaxvault(scratch, *base, "--dry-run", "--json"))["plan"]["counts"]
             if check_again else None)
    return Incident(damaged, shipped, dry, restore, outcome, left, again)
