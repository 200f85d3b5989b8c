"""A backup killed with SIGKILL at any point leaves nothing that looks complete; the next run cleans up."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from backup.config import BackupConfig
from backup.runner import run_backup
from backup.stages import build_stages, scan
from backup.storage import reader
from backup.storage.file import FileRepository
from backup.verify import verify
from tests.backup.conftest import install_capture

CHILD = """
import asyncio, json, sys
from pathlib import Path
from backup.config import BackupConfig
from backup.runner import run_backup
raw = json.loads(sys.argv[1])
config = BackupConfig(database_url=raw["db"], spool_dir=Path(raw["spool"]), primary_url=raw["primary"],
                      replica_urls=tuple(raw["replicas"]), chunk_rows=raw["chunk_rows"])
asyncio.run(run_backup(config, full=True))
"""


def _objects(directory: Path) -> int:
    return sum(1 for p in directory.rglob("*.zst")) if directory.exists() else 0


@pytest.mark.parametrize("kill_when", ["spooling", "uploading"])
async def test_kill_9_leaves_no_complete_looking_snapshot(file_config: BackupConfig, kill_when: str) -> None:
    config = replace(file_config, chunk_rows=5)  # ~200 chunks: a run long enough to be cut short
    await install_capture(config.database_url)
    watched = config.spool_dir if kill_when == "spooling" else Path((config.primary_url or "")[7:])
    argument = json.dumps({"db": config.database_url, "spool": str(config.spool_dir),
                           "primary": config.primary_url, "replicas": list(config.replica_urls),
                           "chunk_rows": config.chunk_rows})
    child = subprocess.Popen([sys.executable, "-c", CHILD, argument])
    deadline = time.monotonic() + 60
    while _objects(watched) < 20 and child.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the backup finished before it could be killed"

    stages = build_stages(FileRepository(config.spool_dir), config.primary_url, config.replica_urls, None)
    for stage in stages:
        for snapshot in reader.list_snapshots(stage.repo):  # whatever looks complete must be complete
            assert verify([stage], snapshot.id, deep=True).ok
    assert any(not committed for stage in stages for committed in scan(stage.repo).values())

    summary = await run_backup(config, full=True)
    assert summary.snapshot_id
    for stage in stages:
        assert all(scan(stage.repo).values()), f"orphans left at {stage.name}"
    report = verify(stages, deep=True)
    assert report.ok and report.units >= 2
