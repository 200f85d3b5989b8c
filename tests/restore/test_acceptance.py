"""The acceptance scenario of issue 5: find the incident, restore exactly the damaged rows."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest

from backup.capture.triggers import SCHEMA
from backup.config import BackupConfig
from backup.restore.find_loss import find_loss
from backup.restore.predicate import parse
from backup.restore.records import RestoreRequest, plan_restore, restore_records
from backup.restore.source import shipped_changes
from backup.runner import run_backup
from backup.storage.codec import Key
from backup.storage.reader import list_segments
from backup.storage.repository import open_repository
from tests.restore.scenario import doses_now, prepare, strike

pytestmark = pytest.mark.slow


@pytest.fixture(params=["file", "s3-encrypted-no-live-log"])
def config(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> BackupConfig:
    if request.param == "file":
        return BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                            primary_url=(tmp_path / "primary").as_uri(), chunk_rows=300)
    endpoint = request.getfixturevalue("s3_endpoint_url")
    bucket = request.getfixturevalue("s3_bucket")
    return BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                        primary_url=f"s3://{bucket}/primary", s3_endpoint_url=endpoint,
                        key=Key(os.urandom(32)), chunk_rows=300)


async def test_find_the_incident_and_restore_exactly_the_damaged_rows(config: BackupConfig) -> None:
    drop_live_log = config.key is not None
    await prepare(config)
    incident = await strike(config)
    await run_backup(config, full=False)
    if drop_live_log:
        conn = await asyncpg.connect(config.database_url)
        await conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        await conn.close()
    else:
        # Not yet shipped: found in the live change log only, and it must make this row a conflict.
        conn = await asyncpg.connect(config.database_url)
        late_fix = sorted(incident.nulled)[-1]
        await conn.execute("UPDATE doses SET lot_number = 'UNSHIPPED-FIX' WHERE id = $1", late_fix)
        await conn.close()
    repo = open_repository(config.primary_url or "", config.s3_endpoint_url)

    segments = list_segments(repo, config.key)
    windows = find_loss(shipped_changes(repo, segments, "doses", config.key), table="doses")
    found = {w.signal: w for w in windows}
    assert found["update administered_on"].set_to_null == len(incident.nulled)
    assert found["delete"].count == len(incident.deleted)
    assert {found[s].proposed_as_of for s in ("update administered_on", "delete")} == \
        {windows[0].proposed_as_of}
    assert windows[0].signal in ("update administered_on", "update next_due_on", "delete")
    as_of = windows[0].proposed_as_of

    where = parse(f"administered_on = '{incident.day.isoformat()}' AND dose_number = 1")
    request = RestoreRequest(table="doses", as_of=as_of, where=where, actor="test-operator")
    conflicts = {incident.lot_fixed} | (set() if drop_live_log else {late_fix})
    plan = await plan_restore(config.database_url, repo, config.key, request)
    assert plan.counts["conflict"] == len(conflicts)
    assert plan.counts["reinsert"] == len(incident.deleted)
    assert plan.counts["write_back"] == len(incident.nulled) - len(conflicts)
    assert plan.counts["untouched"] == 0
    assert 0 < plan.chunks_read <= plan.chunks_total
    assert {c.key["id"] for c in plan.conflicts} == conflicts
    assert plan.sample and all(d.columns for d in plan.sample)
    assert (await doses_now(config.database_url, incident.deleted)) == {}  # the dry run wrote nothing

    report = await restore_records(config.database_url, repo, config.key, request)
    assert report.applied and report.restored == len(incident.damaged) - len(conflicts)
    now = await doses_now(config.database_url, incident.damaged | incident.later_dose2
                          | {incident.born_after})
    for dose_id in incident.damaged - conflicts:
        assert now[dose_id] == incident.before[dose_id], dose_id
    assert now[incident.lot_fixed]["lot_number"] == "FIXED-LOT"
    assert now[incident.lot_fixed]["administered_on"] is None
    assert incident.later_dose2 <= set(now)
    assert now[incident.born_after]["lot_number"] == "LATE"

    conn = await asyncpg.connect(config.database_url)
    try:
        audit = await conn.fetchrow("SELECT actor_sub, detail FROM audit_log WHERE action = 'restore'")
    finally:
        await conn.close()
    assert audit["actor_sub"] == "test-operator"
    assert f"{incident.day.isoformat()}" in audit["detail"]

    again = await restore_records(config.database_url, repo, config.key, request)
    assert again.restored == 0
    assert again.plan.counts["conflict"] == len(conflicts)


