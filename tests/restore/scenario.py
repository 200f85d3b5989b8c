"""The incident the project exists for, on a small registry: backups, legitimate work, the damage.

Used by the acceptance test and the CLI tests; every step runs the real backup module against a
real PostgreSQL and a real repository (file:// or the S3 test endpoint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import asyncpg

from api.db.seed import seed
from backup.capture.triggers import install
from backup.config import BackupConfig
from backup.runner import run_backup

RECIPIENTS = 1500


def scenario_config(database_url: str, tmp_path: Path) -> BackupConfig:
    """A file:// primary and a spool under tmp_path; small chunks so key ranges can prune."""
    return BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                        primary_url=(tmp_path / "primary").as_uri(), chunk_rows=300)


async def database_now(url: str) -> datetime:
    """The database's clock (T for a restore is taken there, never from the test's clock)."""
    conn = await asyncpg.connect(url)
    try:
        moment: datetime = await conn.fetchval("SELECT clock_timestamp()")
        return moment
    finally:
        await conn.close()


@dataclass(frozen=True)
class Incident:
    day: date
    nulled: frozenset[int]          # dose ids whose administered_on the incident set to NULL
    deleted: frozenset[int]         # dose ids the incident deleted
    lot_fixed: int                  # a nulled dose whose lot number was corrected afterwards
    later_dose2: frozenset[int]     # dose-2 ids recorded after the incident for damaged recipients
    born_after: int                 # a dose 1 on the same day recorded after the incident
    before: dict[int, dict]         # every damaged row as it was before the incident

    @property
    def damaged(self) -> frozenset[int]:
        return self.nulled | self.deleted


async def prepare(config: BackupConfig) -> None:
    """Seed, install capture, full backup, legitimate work, incremental."""
    conn = await asyncpg.connect(config.database_url)
    try:
        await seed(conn, RECIPIENTS, seed_value=7)
        await install(conn)
    finally:
        await conn.close()
    await run_backup(config, full=True)
    conn = await asyncpg.connect(config.database_url)
    try:
        await conn.execute("UPDATE doses SET lot_number = lot_number || '-C' WHERE id % 97 = 0")
        await conn.execute(
            "INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number, administered_on, "
            "center_id, recorded_by) SELECT r.id, 1, 'BNT162B2', 'NEW-1', DATE '2021-12-01', r.center_id, "
            "'test' "
            "FROM recipients r WHERE NOT EXISTS (SELECT 1 FROM doses d WHERE d.recipient_id = r.id) "
            "AND r.id % 5 = 0")
    finally:
        await conn.close()
    await run_backup(config, full=False)


async def strike(config: BackupConfig) -> Incident:
    """The incident (one transaction) and the legitimate work that continues after it."""
    conn = await asyncpg.connect(config.database_url)
    try:
        day = await conn.fetchval(
            "SELECT administered_on FROM doses WHERE dose_number = 1 AND administered_on IS NOT NULL "
            "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
        rows = await conn.fetch("SELECT to_jsonb(d)::text AS image, id FROM doses d "
                                "WHERE dose_number = 1 AND administered_on = $1", day)
        before = {row["id"]: row["image"] for row in rows}
        async with conn.transaction():
            nulled = await conn.fetch("UPDATE doses SET administered_on = NULL, next_due_on = NULL "
                                      "WHERE dose_number = 1 AND administered_on = $1 AND id % 4 <> 0 "
                                      "RETURNING id", day)
            deleted = await conn.fetch("DELETE FROM doses WHERE dose_number = 1 AND administered_on = $1 "
                                       "RETURNING id", day)
        nulled_ids = sorted(r["id"] for r in nulled)
        lot_fixed = nulled_ids[0]
        await conn.execute("UPDATE doses SET lot_number = 'FIXED-LOT' WHERE id = $1", lot_fixed)
        later = await conn.fetch(
            "INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number, administered_on, "
            "center_id, recorded_by) SELECT d.recipient_id, 2, d.vaccine_code, 'D2', $1::date + 60, "
            "d.center_id, 'test' FROM doses d WHERE d.id = ANY($2::bigint[]) AND NOT EXISTS "
            "(SELECT 1 FROM doses x WHERE x.recipient_id = d.recipient_id AND x.dose_number = 2) "
            "RETURNING id", day, nulled_ids[1:40])
        recipient = await conn.fetchval(
            "INSERT INTO recipients (national_id, full_name, birth_date, sex, district_id, center_id) "
            "SELECT '9999999999', 'Late Comer', DATE '1990-01-01', 'female', district_id, id "
            "FROM centers ORDER BY id LIMIT 1 RETURNING id")
        born = await conn.fetchval(
            "INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number, administered_on, "
            "center_id, recorded_by) SELECT id, 1, 'BNT162B2', 'LATE', $2, center_id, 'test' "
            "FROM recipients WHERE id = $1 RETURNING id", recipient, day)
    finally:
        await conn.close()
    return Incident(day=day, nulled=frozenset(nulled_ids), deleted=frozenset(r["id"] for r in deleted),
                    lot_fixed=lot_fixed, later_dose2=frozenset(r["id"] for r in later), born_after=born,
                    before={k: json.loads(v) for k, v in before.items()})


async def doses_now(url: str, ids: frozenset[int] | set[int]) -> dict[int, dict]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id, to_jsonb(d)::text AS image FROM doses d "
                                "WHERE id = ANY($1::bigint[])", sorted(ids))
    finally:
        await conn.close()
    return {row["id"]: json.loads(row["image"]) for row in rows}
