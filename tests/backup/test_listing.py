"""The listing index through the real commands: a run writes a sealed index at every stage, a no-op
run and `list` answer from it without listing the stage in full, and what they answer is what a
full listing answers, on file:// and on S3 over HTTP, with a key. (The model-based test in
test_listing_model.py covers kills, prune and attacks; these check the wiring.)"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from backup.config import BackupConfig
from backup.inventory import inventory
from backup.listing import FULL, INDEX, list_stage, newest_units
from backup.runner import run_backup
from backup.stages import Stage, build_stages
from backup.storage import codec
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.index import INDEX_KEY, StageIndex, encode_index, repository_name
from backup.storage.repository import ObjectInfo
from backup.verify import verify
from tests.backup.conftest import change_lot, install_capture

pytestmark = pytest.mark.slow


@pytest.fixture(params=["file", "s3"])
def config(request: pytest.FixtureRequest) -> BackupConfig:
    base: BackupConfig = request.getfixturevalue(f"{request.param}_config")
    return replace(base, key=Key(os.urandom(32)))


def _stages(config: BackupConfig) -> list[Stage]:
    return build_stages(FileRepository(config.spool_dir), config.primary_url, config.replica_urls,
                        config.s3_endpoint_url)


class Counting:
    """A stage's real repository that counts what is listed (keys returned by `list`)."""

    def __init__(self, stage: Stage) -> None:
        self.repo = stage.repo
        self.listed = 0

    def list(self, prefix: str = "", start_after: str = "") -> list[ObjectInfo]:
        found = self.repo.list(prefix, start_after)
        self.listed += len(found)
        return found

    def __getattr__(self, name: str) -> object:
        return getattr(self.repo, name)


async def test_runs_keep_a_sealed_index_that_lists_what_the_stage_holds(config: BackupConfig) -> None:
    await install_capture(config.database_url)
    full = await run_backup(config, full=True)
    for lot in ("A", "B"):
        await change_lot(config.database_url, lot)
        await run_backup(config, full=False)
    assert (await run_backup(config, full=False)).noop
    stages = _stages(config)
    by_index = inventory(stages, config.key)
    for stage in stages[1:]:
        assert codec.is_sealed(stage.repo.get(INDEX_KEY))
        listing = list_stage(stage.repo, config.key)
        assert listing.source == INDEX and listing.tail == 0, listing.reason
        # Nothing but the keys after the index is listed: none, when nothing new was shipped.
        counting = Counting(stage)
        list_stage(counting, config.key)  # type: ignore[arg-type]
        assert counting.listed == 0
        snapshot, segment = newest_units(stage.repo, config.key)
        assert snapshot is not None and snapshot.id == full.snapshot_id
        assert segment is not None and segment.rows == 1
        stage.repo.delete(INDEX_KEY)
    assert list_stage(stages[1].repo, config.key).source == FULL
    assert inventory(stages, config.key) == by_index  # the same answer, listed in full
    assert (await run_backup(config, full=False)).noop  # rebuilds the index at every stage
    assert all(list_stage(s.repo, config.key).source == INDEX for s in stages[1:])
    assert verify(stages, key=config.key).ok


async def test_a_stale_index_hides_nothing_and_a_foreign_one_is_refused(config: BackupConfig) -> None:
    """A crash between a segment's commit and the index write leaves the older index: the units
    after it are still listed. An index sealed for the replica, put on the primary, is refused
    (and verify says so) although the key is right; a run then rewrites it."""
    await install_capture(config.database_url)
    await run_backup(config, full=True)
    stages = _stages(config)
    primary, replica = stages[1].repo, stages[2].repo
    old = primary.get(INDEX_KEY)
    await change_lot(config.database_url, "C")
    shipped = await run_backup(config, full=False)
    primary.put(INDEX_KEY, old)  # as if the run died before writing the index
    listing = list_stage(primary, config.key)
    assert listing.source == INDEX and listing.tail == 1
    assert ("segment", shipped.segment_id) in listing.entries

    primary.put(INDEX_KEY, replica.get(INDEX_KEY))
    listing = list_stage(primary, config.key)
    assert listing.source == FULL and "not this repository" in listing.index_refused
    assert ("segment", shipped.segment_id) in listing.entries
    problems = [p for p in verify(stages, key=config.key).problems if p.key == INDEX_KEY]
    assert len(problems) == 1 and problems[0].stage == "primary" and "refused" in problems[0].reason

    # Unsealed, claiming nothing: refused by name, the stage listed in full.
    primary.put(INDEX_KEY, encode_index(StageIndex(repository_name(primary.url), ()), None))
    assert "not authenticated" in list_stage(primary, config.key).index_refused
    assert (await run_backup(config, full=False)).noop
    assert list_stage(primary, config.key).source == INDEX
    assert verify(stages, key=config.key).ok


async def test_verify_reports_a_unit_deleted_from_the_middle(config: BackupConfig) -> None:
    """What the index's checks cannot see (a unit deleted by hand between its oldest and newest),
    verify, which lists in full, reports by name."""
    await install_capture(config.database_url)
    await run_backup(config, full=True)
    ids = []
    for lot in ("D", "E", "F"):
        await change_lot(config.database_url, lot)
        ids.append((await run_backup(config, full=False)).segment_id)
    stages = _stages(config)
    primary = stages[1].repo
    primary.delete(f"segments/{ids[1]}/manifest.json")
    problems = [p for p in verify(stages, key=config.key).problems if p.key == INDEX_KEY]
    assert len(problems) == 1 and f"lists segment {ids[1]} (not stored)" in problems[0].reason
