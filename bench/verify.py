"""`vaxvault backup verify --deep` of the repository the snapshot and restore runs left: every
object read, authenticated, decompressed and re-counted. Its memory is the figure to watch (it
must stay flat as the registry grows); the repository is removed afterwards to free the disk."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.process import CommandFailed, run_pipeline
from bench.progress import say
from bench.server import VAXVAULT
from bench.snapshot import Scratch, SnapshotResult

TOOL = "vaxvault backup verify --deep"


def verify_deep(scratch: Scratch) -> SnapshotResult:
    try:
        measured = run_pipeline([[str(VAXVAULT), "backup", "verify", "--deep"]], env=scratch.env)
    except CommandFailed as exc:
        return SnapshotResult(TOOL, "", False, note=str(exc)[:300])
    result = SnapshotResult(TOOL, "vaxvault backup verify --deep (file:// repository)", True,
                            measured.seconds, None, measured.peak_rss_mib,
                            note="the full snapshot and every segment of the runs above")
    say(f"{TOOL}: {result.seconds} s, peak {result.peak_rss_mib} MiB")
    return result


def remove_repository(scratch: Scratch) -> None:
    """The file:// repository and spool of the scratch copy (gigabytes at 10M)."""
    for variable in ("VAXVAULT_BACKUP_URL", "VAXVAULT_BACKUP_SPOOL_DIR"):
        value = scratch.env.get(variable, "")
        path = Path(value.removeprefix("file://")) if value else None
        if path is not None and path.is_absolute():
            shutil.rmtree(path, ignore_errors=True)
