"""Full snapshot vs pg_dump -Fc vs pg_dump | zstd -3, and pg_restore of the dump as the peer of
a restore: wall time, bytes written and peak memory of the processes involved.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from api.embedded_postgres import EmbeddedPostgres
from bench import pgbackrest_peer
from bench.cluster import CACHE, admin, clone_database, drop_database
from bench.process import CommandFailed, Measured, run_pipeline
from bench.progress import say
from bench.server import VAXVAULT

WORK = CACHE / "dumps"


@dataclass(frozen=True)
class SnapshotResult:
    tool: str
    command: str
    available: bool
    seconds: float | None = None
    bytes: int | None = None
    peak_rss_mib: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _result(tool: str, command: str, measured: Measured, output: Path) -> SnapshotResult:
    result = SnapshotResult(tool, command, True, measured.seconds, _size(output),
                            measured.peak_rss_mib)
    say(f"{tool}: {result.seconds} s, {result.bytes:,} bytes, peak {result.peak_rss_mib} MiB")
    return result


def backup_command_available() -> bool:
    """True when this build has `vaxvault backup run` (the backup branch has landed)."""
    out = subprocess.run([str(VAXVAULT), "backup", "run", "--help"], capture_output=True, check=False)
    return out.returncode == 0


@dataclass(frozen=True)
class Scratch:
    """A scratch copy of a seeded database with change capture and a file:// repository."""

    name: str
    env: dict[str, str]


def vaxvault(scratch: Scratch, *args: str) -> str:
    """Run one vaxvault command against the scratch database and repository; return stdout."""
    out = subprocess.run([str(VAXVAULT), *args], capture_output=True, text=True, check=False,
                         env={**os.environ, **scratch.env})
    if out.returncode != 0:
        raise CommandFailed(f"vaxvault {' '.join(args)} exited {out.returncode}: "
                            f"{out.stderr.strip()[-300:]}")
    return out.stdout


def ours_full(cluster: EmbeddedPostgres, source: str, label: str
              ) -> tuple[SnapshotResult, Scratch | None]:
    """`vaxvault backup run --full` of a scratch copy (capture installed there, never on the
    cached database); the copy and repository are returned for the restore measurement."""
    tool = "vaxvault backup run --full"
    command = "vaxvault backup init && vaxvault backup run --full (file:// repository)"
    if not backup_command_available():
        return SnapshotResult(tool, command, False,
                              note="not in this build yet (backup branch)"), None
    repository = WORK / f"repo-{label}"
    spool = WORK / f"spool-{label}"
    shutil.rmtree(repository, ignore_errors=True)
    shutil.rmtree(spool, ignore_errors=True)
    name = f"bench_scratch_backup_{label}"
    url = clone_database(cluster, source, name)
    scratch = Scratch(name, {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repository.as_uri(),
                             "VAXVAULT_BACKUP_SPOOL_DIR": str(spool)})
    vaxvault(scratch, "backup", "init")
    summary = WORK / f"run-{label}.json"
    measured = run_pipeline([[str(VAXVAULT), "backup", "run", "--full", "--json"]], summary, env=scratch.env)
    phases = json.loads(summary.read_text()).get("phases", {})
    summary.unlink()
    spent = ", ".join(f"{name} {seconds:.2f}" for name, seconds in phases.items())
    result = replace(_result(tool, command, measured, repository), note=f"phases (s): {spent}")
    say(result.note)
    return result, scratch


def dumps(database_url: str, label: str) -> tuple[list[SnapshotResult], Path]:
    """pg_dump -Fc and pg_dump | zstd -3 of the database; returns the results and the -Fc file."""
    WORK.mkdir(parents=True, exist_ok=True)
    custom = WORK / f"{label}.dump"
    plain = WORK / f"{label}.sql.zst"
    results = [
        _result("pg_dump -Fc", "pg_dump -Fc -f FILE",
                run_pipeline([["pg_dump", "-Fc", "-f", str(custom), database_url]]), custom),
        _result("pg_dump | zstd -3", "pg_dump | zstd -3 -q -c > FILE",
                run_pipeline([["pg_dump", database_url], ["zstd", "-3", "-q", "-c"]], plain), plain),
    ]
    plain.unlink()
    return results, custom


def pgbackrest_full(cluster: EmbeddedPostgres, database: str) -> SnapshotResult:
    """pgBackRest's full physical backup of a cluster holding the same registry (a physical copy
    of the bench cluster with only `database` kept, not measured), zstd level 3 like ours, two
    processes like our two workers."""
    tool = "pgbackrest backup --type=full"
    command = "pgbackrest --stanza=bench --type=full backup (compress-type=zst, level 3, process-max=2)"
    if not pgbackrest_peer.available():
        say("pgbackrest not on PATH: its full backup is skipped (apt-get install pgbackrest)")
        return SnapshotResult(tool, command, False, note="pgbackrest not on PATH")
    source, _config, measured = pgbackrest_peer.full_backup_of(cluster, database, pgbackrest_peer.LIKE_OURS)
    try:
        size = pgbackrest_peer.backup_bytes()
    finally:
        source.destroy()
    result = SnapshotResult(tool, command, True, measured.seconds, size, measured.peak_rss_mib,
                            note=f"{pgbackrest_peer.version()}: physical, the whole cluster "
                                 "(registry, template and postgres databases); bytes of the backup "
                                 "set, without the WAL archive")
    say(f"{tool}: {result.seconds} s, {size:,} bytes")
    return result


def pg_restore_full(cluster: EmbeddedPostgres, dump: Path, label: str) -> SnapshotResult:
    """pg_restore of the whole -Fc dump into a new scratch database (the restore's peer)."""
    scratch = f"bench_scratch_restore_{label}"
    admin(cluster.url(), f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)',
          f'CREATE DATABASE "{scratch}"')
    try:
        measured = run_pipeline([["pg_restore", "--no-owner", "-d", cluster.url(scratch),
                                  str(dump)]])
    finally:
        drop_database(cluster, scratch)
    result = SnapshotResult("pg_restore (full dump, scratch DB)", "pg_restore --no-owner -d SCRATCH FILE",
                            True, measured.seconds, dump.stat().st_size, measured.peak_rss_mib)
    say(f"pg_restore: {result.seconds} s, peak {result.peak_rss_mib} MiB")
    return result
