import asyncio
import hashlib
import itertools
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from api.db.seed import (
    DOSE_COLUMNS,
    RECIPIENT_COLUMNS,
    VACCINE_WEIGHTS,
    SeedConflict,
    SeedGeneratorFailed,
    _Generator,
    center_count,
    national_id,
    seed,
)
from tests.harness import SEEDED_RECIPIENTS


async def _table_digest(conn: asyncpg.Connection, table: str) -> str:
    return await conn.fetchval(
        f"SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {table} t")


async def test_same_seed_gives_identical_rows(database_url: str, seeded_database_url: str) -> None:
    fresh = await asyncpg.connect(database_url)
    seeded = await asyncpg.connect(seeded_database_url)
    try:
        summary = await seed(fresh, SEEDED_RECIPIENTS, seed_value=7)
        assert summary.recipients == SEEDED_RECIPIENTS
        for table in ("centers", "recipients", "doses"):
            assert await _table_digest(fresh, table) == await _table_digest(seeded, table)
        await seed(fresh, SEEDED_RECIPIENTS, seed_value=8, replace=True)
        assert await _table_digest(fresh, "recipients") != await _table_digest(seeded, "recipients")
    finally:
        await fresh.close()
        await seeded.close()


async def test_seeding_twice_needs_replace(seeded_database_url: str) -> None:
    conn = await asyncpg.connect(seeded_database_url)
    try:
        with pytest.raises(SeedConflict, match="--replace"):
            await seed(conn, 10)
        summary = await seed(conn, 10, replace=True)
        assert await conn.fetchval("SELECT count(*) FROM recipients") == 10
        assert await conn.fetchval("SELECT count(*) FROM doses") == summary.doses
        # Sequences continue after the seeded ids.
        new_id = await conn.fetchval(
            "INSERT INTO recipients (national_id, full_name, birth_date, sex, district_id, "
            "center_id) VALUES ('9999999999', 'N', '1990-01-01', 'male', 1, 1) RETURNING id")
        assert new_id == 11
    finally:
        await conn.close()


def test_national_ids_are_unique_and_well_formed() -> None:
    ids = [national_id(i, 50_000) for i in range(1, 50_001)]
    assert len(set(ids)) == len(ids)
    assert {len(i) for i in ids} == {10, 13, 17}
    assert all(i.isdigit() and i[0] != "0" for i in ids)


async def test_seeded_registry_is_realistic(seeded_database_url: str) -> None:
    conn = await asyncpg.connect(seeded_database_url)
    try:
        recipients = await conn.fetch("SELECT * FROM recipients")
        doses = await conn.fetch(
            "SELECT d.*, v.doses_required, v.dose_interval_days FROM doses d "
            "JOIN vaccines v ON v.code = d.vaccine_code ORDER BY recipient_id, dose_number")
        centers = await conn.fetchval("SELECT count(*) FROM centers")
    finally:
        await conn.close()
    assert len(recipients) == SEEDED_RECIPIENTS
    assert centers >= 128
    phone = re.compile(r"^\+8801[3-9]\d{8}$")
    assert all(r["phone"] is None or phone.match(r["phone"]) for r in recipients)
    by_recipient: dict[int, list] = {}
    for dose in doses:
        by_recipient.setdefault(dose["recipient_id"], []).append(dose)
    for series in by_recipient.values():
        assert [d["dose_number"] for d in series] == list(range(1, len(series) + 1))
        assert len({d["vaccine_code"] for d in series}) == 1
        for earlier, later in itertools.pairwise(series):
            gap = later["administered_on"] - earlier["administered_on"]
            assert gap >= timedelta(days=earlier["dose_interval_days"])
        for dose in series:
            if dose["dose_number"] < dose["doses_required"]:
                assert dose["next_due_on"] == dose["administered_on"] + timedelta(
                    days=dose["dose_interval_days"])
            else:
                assert dose["next_due_on"] is None
    registered = {r["id"]: r["registered_at"].date() for r in recipients}
    assert all(s[0]["administered_on"] > registered[rid] for rid, s in by_recipient.items())
    never = SEEDED_RECIPIENTS - len(by_recipient)
    only_first = sum(1 for s in by_recipient.values()
                     if len(s) == 1 and s[0]["doses_required"] > 1)
    assert 0.05 < never / SEEDED_RECIPIENTS < 0.16
    assert 0.05 < only_first / SEEDED_RECIPIENTS < 0.17
    per_day: dict = {}
    for dose in doses:
        per_day[dose["administered_on"]] = per_day.get(dose["administered_on"], 0) + 1
    busiest = max(per_day.values())
    assert busiest > 10 * (len(doses) / len(per_day)), "campaign days should stand out"
    assert 1.5 < len(doses) / SEEDED_RECIPIENTS < 2.1


def test_generated_rows_match_the_recorded_fingerprint() -> None:
    """Speed-ups of the generator must not change a single row: benchmarks and acceptance
    checks name rows of a given seed. The digest was taken from the generator before it was
    optimised (cumulative weights computed once); a change here means seeds mean new data."""
    districts = [{"id": i, "name": n}
                 for i, n in enumerate(["Dhaka", "Chattogram", "Sylhet", "Bandarban"], start=1)]
    vaccines = [{"code": c, "doses_required": 1 if c == "AD26" else 2, "dose_interval_days": 28}
                for c in VACCINE_WEIGHTS]
    generator = _Generator(random.Random(7), districts, vaccines, 16)
    rows = repr((generator.centers, list(generator.rows(3000)))).encode()
    assert hashlib.sha256(rows).hexdigest() == (
        "b24d85e52607eb9b2069c565612ee8fcf6737b6d01581c488f66022dc36e9fef")


async def _schema(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """Every index and constraint of the registry tables, as PostgreSQL prints them."""
    rows = await conn.fetch(
        "SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS definition "
        "FROM pg_index WHERE indrelid IN ('recipients'::regclass, 'doses'::regclass) "
        "UNION ALL SELECT conname, conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) "
        "|| CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END FROM pg_constraint "
        "WHERE conrelid IN ('recipients'::regclass, 'doses'::regclass) "
        "OR confrelid IN ('recipients'::regclass, 'doses'::regclass) ORDER BY 1, 2")
    return [(r["name"], r["definition"]) for r in rows]


@pytest.mark.parametrize("background", [False, True], ids=["in-process", "child-process"])
async def test_the_fast_load_stores_what_row_by_row_copy_stores(
        database_url: str, seeded_database_url: str, background: bool) -> None:
    """Differential: the COPY text written by the seed (in this process or a child) holds
    exactly the values of the generator's rows copied as records (the seed's old path), and
    the tables end with the indexes and constraints the migrations made, all validated."""
    fresh = await asyncpg.connect(database_url)
    reference = await asyncpg.connect(seeded_database_url)
    try:
        migrated = await _schema(fresh)
        await seed(fresh, SEEDED_RECIPIENTS, seed_value=7, background=background)
        assert await _schema(fresh) == migrated
        districts = [dict(r) for r in await reference.fetch("SELECT id, name FROM districts ORDER BY id")]
        vaccines = [dict(r) for r in await reference.fetch(
            "SELECT code, doses_required, dose_interval_days FROM vaccines")]
        generator = _Generator(random.Random(7), districts, vaccines, center_count(SEEDED_RECIPIENTS))
        rows = list(generator.rows(SEEDED_RECIPIENTS))
        async with reference.transaction():
            await reference.execute("TRUNCATE centers, recipients, doses CASCADE")
            await reference.copy_records_to_table("centers", records=generator.centers,
                                                  columns=("id", "name", "district_id"))
            await reference.copy_records_to_table("recipients", records=[r for r, _ in rows],
                                                  columns=RECIPIENT_COLUMNS)
            await reference.copy_records_to_table("doses", records=[d for _, ds in rows for d in ds],
                                                  columns=DOSE_COLUMNS)
        for table in ("centers", "recipients", "doses"):
            assert await _table_digest(fresh, table) == await _table_digest(reference, table)
    finally:
        await fresh.close()
        await reference.close()


async def test_a_seed_failing_mid_load_leaves_the_migrated_tables(database_url: str) -> None:
    """Indexes and keys are dropped for the load inside the seed's transaction: a row the
    database refuses half-way rolls everything back, indexes and constraints included."""
    conn = await asyncpg.connect(database_url)
    try:
        # CHECK constraints stay during the load, so this one refuses a row in a late batch.
        await conn.execute("ALTER TABLE recipients ADD CONSTRAINT test_refuses_late_rows "
                           "CHECK (id < 1500)")
        migrated = await _schema(conn)
        with pytest.raises(asyncpg.CheckViolationError, match="test_refuses_late_rows"):
            await seed(conn, 2000, background=False)
        assert await _schema(conn) == migrated
        assert await conn.fetchval("SELECT count(*) FROM recipients") == 0
        assert await conn.fetchval("SELECT count(*) FROM centers") == 0
    finally:
        await conn.close()


async def test_a_failing_generator_process_is_reported(database_url: str) -> None:
    """The child's error reaches the caller (it does not wait for ever) and nothing is kept."""
    conn = await asyncpg.connect(database_url)
    try:
        # A vaccine the generator draws but cannot find: its lookup fails in the child.
        await conn.execute("DELETE FROM vaccines WHERE code = 'AD26'")
        migrated = await _schema(conn)
        with pytest.raises(SeedGeneratorFailed, match="KeyError: 'AD26'"):
            await seed(conn, 2000, background=True)
        assert await _schema(conn) == migrated
        assert await conn.fetchval("SELECT count(*) FROM recipients") == 0
    finally:
        await conn.close()


_SEED_IN_A_PROCESS = """
import asyncio, sys
import asyncpg
from api.db.seed import seed

async def main() -> None:
    conn = await asyncpg.connect(sys.argv[1])
    try:
        await seed(conn, int(sys.argv[2]), background=True)
    finally:
        await conn.close()

asyncio.run(main())
"""


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


async def test_a_generator_killed_silently_is_reported_not_waited_for(database_url: str) -> None:
    """SIGKILL leaves the child no chance to say why, and can cut a batch off half-written in
    the pipe: the seed must fail (SeedGeneratorFailed) and roll back, not wait for ever for the
    rest of the batch. A slow trigger holds the parent in its first COPY while the child writes
    its next batches, so the child dies with one of them stuck in the pipe."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE FUNCTION test_slow() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN PERFORM pg_sleep(0.0001); RETURN NEW; END$$; "
            "CREATE TRIGGER test_slow BEFORE INSERT ON recipients FOR EACH ROW EXECUTE FUNCTION test_slow()")
        migrated = await _schema(conn)
    finally:
        await conn.close()
    parent = subprocess.Popen([sys.executable, "-c", _SEED_IN_A_PROCESS, database_url, "150000"],
                              stderr=subprocess.PIPE, text=True)
    try:
        child, deadline = None, time.monotonic() + 120
        while child is None and time.monotonic() < deadline:  # the generator, forked by the parent
            found = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
            child = int(found[0]) if found else None
            await asyncio.sleep(0.05)
        assert child, "the seed started no generator process"
        before = -1
        while (ticks := _cpu_ticks(child)) != before and time.monotonic() < deadline:
            before = ticks  # generating: wait until it is blocked writing into the full pipe
            await asyncio.sleep(1.0)
        os.kill(child, signal.SIGKILL)
        _, errors = await asyncio.to_thread(parent.communicate, timeout=90)
    except subprocess.TimeoutExpired:
        parent.kill()
        parent.communicate()
        raise AssertionError("the seed waited for ever for a generator that was killed") from None
    assert parent.returncode != 0 and "SeedGeneratorFailed" in errors, errors[-2000:]
    conn = await asyncpg.connect(database_url)
    try:
        assert await _schema(conn) == migrated
        assert await conn.fetchval("SELECT count(*) FROM recipients") == 0
    finally:
        await conn.close()


async def test_a_seed_under_change_capture_logs_no_truncate_of_empty_tables(database_url: str) -> None:
    """COPY FREEZE needs its tables truncated in the seed's transaction; with capture installed
    that TRUNCATE of empty tables was logged (two 'T' changes before a single row existed), and
    --replace logged its own TRUNCATE and then this one again."""
    from backup.capture.triggers import install

    conn = await asyncpg.connect(database_url)
    try:
        await install(conn)
        truncates = "SELECT count(*) FROM vaxvault_backup.changes WHERE op = 'T'"
        await seed(conn, 300, background=False)
        assert await conn.fetchval(truncates) == 0
        assert await conn.fetchval("SELECT count(*) FROM vaxvault_backup.changes WHERE op = 'I' "
                                   "AND table_name = 'recipients'") == 300
        await seed(conn, 200, seed_value=2, replace=True, background=False)
        once = await conn.fetch("SELECT table_name, count(*) AS n FROM vaxvault_backup.changes "
                                "WHERE op = 'T' GROUP BY table_name ORDER BY table_name")
        assert [(r["table_name"], r["n"]) for r in once] == [("centers", 1), ("doses", 1), ("recipients", 1)]
        assert await conn.fetchval("SELECT count(*) FROM recipients") == 200
    finally:
        await conn.close()
