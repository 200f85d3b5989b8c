"""No chain without a base: an incremental run where a stage holds no snapshot takes a full one,
and `backup list` / `verify` flag a segment that no snapshot at its stage can reach."""

from __future__ import annotations

import pytest

from backup.config import BackupConfig
from backup.inventory import ORPHAN, STORED, inventory
from backup.runner import run_backup
from backup.stages import build_stages, remove_unit
from backup.storage.file import FileRepository
from backup.verify import verify
from tests.backup.conftest import change_lot, install_capture

pytestmark = pytest.mark.slow


async def test_an_incremental_without_a_base_takes_a_full_and_orphans_are_flagged(
        file_config: BackupConfig) -> None:
    await install_capture(file_config.database_url)
    first = await run_backup(file_config, full=False)
    assert first.kind == "full" and first.snapshot_id is not None
    assert first.promoted == "primary holds no snapshot to replay segments on"
    await change_lot(file_config.database_url, "X")
    second = await run_backup(file_config, full=False)
    assert second.kind == "incremental" and second.promoted is None and second.segment_id is not None
    stages = build_stages(FileRepository(file_config.spool_dir), file_config.primary_url,
                          file_config.replica_urls, file_config.s3_endpoint_url)
    # The replica loses its snapshot (a careless lifecycle rule): its segment restores nothing now.
    remove_unit(stages[2].repo, "snapshot", first.snapshot_id)
    units = {u.id: u for u in inventory(stages)}
    assert units[second.segment_id].states == {"spool": "-", "primary": STORED, "replica-1": ORPHAN}
    report = verify(stages)
    assert [(p.stage, p.key) for p in report.problems] == \
        [("replica-1", f"segments/{second.segment_id}/manifest.json")]
    assert "restores nothing" in report.problems[0].reason
    # The next incremental run sees the replica without a base and takes a full snapshot.
    await change_lot(file_config.database_url, "Y")
    third = await run_backup(file_config, full=False)
    assert third.kind == "full" and third.promoted == "replica-1 holds no snapshot to replay segments on"
    assert verify(stages).ok
