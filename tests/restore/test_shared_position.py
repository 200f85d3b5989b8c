"""Two segments holding the same change position (a repository mixing two chains, or a segment
copied in again) are refused with an error naming both segments and the position, typed images
and JSON lines alike: never a raw unique violation, never one of the two picked silently."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from backup.config import BackupConfig
from backup.restore.errors import RestorePlanError
from backup.restore.records import RestoreRequest, plan_restore, restore_records
from backup.runner import run_backup
from backup.storage import codec, keys
from backup.storage.manifest import ObjectRef, encode_manifest
from backup.storage.reader import list_segments
from backup.storage.repository import Repository, open_repository
from tests.restore.old_format import as_format_2_0
from tests.restore.scenario import database_now, prepare, scenario_config, strike

pytestmark = pytest.mark.slow


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> BackupConfig:
    return scenario_config(database_url, tmp_path)


def _rewrite(repo: Repository, ref: ObjectRef, edit: bytes) -> ObjectRef:
    """Store `edit` + the object's payload in place of it; the new reference."""
    data = codec.encode(edit + codec.decode(repo.get(ref.key), ref.key, None), ref.key, None)
    repo.put(ref.key, data)
    return ObjectRef(ref.key, codec.sha256(data), len(data))


def _payload(repo: Repository, ref: ObjectRef) -> bytes:
    return codec.decode(repo.get(ref.key), ref.key, None)


@pytest.mark.parametrize("form", ["image", "lines"])
async def test_two_segments_sharing_a_position_are_refused_by_name(config: BackupConfig, form: str) -> None:
    await prepare(config)
    as_of = await database_now(config.database_url)
    await strike(config)
    await run_backup(config, full=False)  # the damage, after T
    conn = await asyncpg.connect(config.database_url)
    try:
        await conn.execute("UPDATE doses SET lot_number = lot_number || '-L' WHERE id % 89 = 0")
    finally:
        await conn.close()
    await run_backup(config, full=False)  # later work, after T too
    repo = open_repository(config.primary_url or "")
    if form == "lines":
        assert as_format_2_0(repo, None) == 3
    damage, later = list_segments(repo)[-2:]
    # A change of the damage segment, copied at the head of the later one (as a re-shipped
    # segment's changes would be): the same position, loaded in the same window.
    if form == "image":
        image = damage.image("doses")
        assert image is not None
        row = _payload(repo, image.object).split(b"\n")[0] + b"\n"
        later_image = later.image("doses")
        assert later_image is not None
        edited = replace(later_image, object=_rewrite(repo, later_image.object, row),
                         rows=later_image.rows + 1)
        later = replace(later, images=tuple(edited if i.table == "doses" else i for i in later.images))
    else:
        row = next(line for line in _payload(repo, damage.object).split(b"\n")
                   if b'"table":"doses"' in line) + b"\n"
        later = replace(later, object=_rewrite(repo, later.object, row), changes=later.changes + 1)
    position = int(row.split(b"\t")[0]) if form == "image" else int(row.split(b",")[0].split(b":")[1])
    manifest_key = keys.format_segment_manifest_key(later.id)
    repo.put(manifest_key, encode_manifest(later, manifest_key, None))

    request = RestoreRequest(table="doses", as_of=as_of)
    for attempt in (plan_restore, restore_records):  # the dry run and the restore
        with pytest.raises(RestorePlanError) as refused:
            await attempt(config.database_url, repo, None, request)
        message = str(refused.value)
        assert f"segments {damage.id} and {later.id} both hold change position {position} of table doses" \
            in message
        assert "two chains" in message and "Nothing was restored" in message
