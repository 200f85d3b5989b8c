"""Restore of lost rows (vaxvault restore records) on a scratch copy: measured once this build
has the restore command; until then reported as unavailable, never faked.
"""

from __future__ import annotations

import subprocess

from api.embedded_postgres import EmbeddedPostgres
from bench.cluster import SeededDatabase
from bench.server import VAXVAULT
from bench.snapshot import SnapshotResult

LOST_ROWS = 266_561


def restore_command_available() -> bool:
    out = subprocess.run([str(VAXVAULT), "restore", "records", "--help"], capture_output=True,
                         check=False)
    return out.returncode == 0


def lost_rows(cluster: EmbeddedPostgres, db: SeededDatabase, label: str) -> list[SnapshotResult]:
    command = f"vaxvault restore records --table doses --where ... ({LOST_ROWS:,} lost dose-1 dates)"
    if not restore_command_available():
        return [SnapshotResult("vaxvault restore records", command, False,
                               note="not in this build yet (restore branch)")]
    return [SnapshotResult("vaxvault restore records", command, False,
                           note="restore command present; measurement not wired yet")]
