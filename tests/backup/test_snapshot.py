"""Full snapshots: every column type survives, the image is one consistent state, chunks carry metadata."""

from __future__ import annotations

import asyncio
import io

import asyncpg

from backup.config import BackupConfig
from backup.runner import run_backup
from backup.snapshot import _range
from backup.storage import reader
from backup.storage.repository import open_repository
from tests.backup.conftest import install_capture
from tests.restore.scenario import database_now

KITCHEN_SINK = r"""
CREATE TABLE kitchen_sink (
    region text, n integer,
    small smallint, big bigint, amount numeric(12, 3), ratio double precision, flag boolean,
    label text, blob bytea, day date, at timestamptz, local timestamp, span interval,
    id uuid, address inet, tags text[], doc jsonb, payload json, letter "char",
    PRIMARY KEY (region, n)
);
INSERT INTO kitchen_sink VALUES
 ('dhaka', 1, -3, 9007199254740993, 12345.678, 1.5e-10, true, E'tab\there\nnew line \\ back', '\x00ff10',
  '1999-12-31', '2024-02-29 23:59:59.999999+06', '2024-01-01 00:00', '1 year 2 days 03:04:05',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.1.2.3/32', ARRAY['a', 'b c', NULL], '{"k": [1, "২"]}',
  '{"raw":  true}', 'x'),
 ('sylhet', 2, NULL, NULL, NULL, 'NaN', NULL, 'বাংলা', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL);
"""


async def _rows(url: str, query: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch(query)]
    finally:
        await conn.close()


async def test_every_column_type_round_trips_into_an_empty_database(
        file_config: BackupConfig, empty_database_url: str) -> None:
    source = await asyncpg.connect(file_config.database_url)
    try:
        await source.execute(KITCHEN_SINK)
    finally:
        await source.close()
    await install_capture(file_config.database_url)
    summary = await run_backup(file_config, full=True)
    assert summary.snapshot_id and summary.pushed["primary"] == [summary.snapshot_id]

    repo = open_repository(file_config.replica_urls[0])
    [snapshot] = reader.list_snapshots(repo)
    target = await asyncpg.connect(empty_database_url)
    try:
        await target.execute(reader.read_schema(repo, snapshot, None))
        for table in snapshot.tables:
            for chunk in table.chunks:
                data = io.BytesIO(reader.read_chunk(repo, chunk, None))
                await target.copy_to_table(table.name, source=data, columns=[c.name for c in table.columns])
    finally:
        await target.close()
    for table in ("kitchen_sink", "recipients", "doses", "audit_log", "vaccines"):
        query = f"SELECT t::text FROM {table} t ORDER BY 1"
        assert await _rows(empty_database_url, query) == await _rows(file_config.database_url, query)
    sink = snapshot.table("kitchen_sink")
    [row1, _] = reader.iter_chunk_rows(repo, sink, sink.chunks[0], None)
    assert row1["label"] == "tab\there\nnew line \\ back" and row1["small"] == "-3" and row1["doc"]
    assert sink.chunks[0].first_key == {"region": "dhaka", "n": 1}
    assert sink.chunks[0].bounds["day"] == ["1999-12-31", "1999-12-31"]


async def test_chunks_cover_every_row_once_with_their_key_range_and_date_bounds(
        file_config: BackupConfig) -> None:
    """Chunks are block ranges: rows an UPDATE moved to other pages (not HOT: an indexed column
    changed) are copied exactly once, in their new version, and every chunk's first/last key and
    date bounds (where it has them) are the min/max of the rows it holds."""
    await install_capture(file_config.database_url)
    conn = await asyncpg.connect(file_config.database_url)
    try:
        moved = await conn.execute("UPDATE recipients SET birth_date = birth_date - 1, registered_at = "
                                   "registered_at + interval '1 second' WHERE id % 7 = 0")
        expected = {r["id"]: r["birth_date"].isoformat()
                    for r in await conn.fetch("SELECT id, birth_date FROM recipients")}
    finally:
        await conn.close()
    assert int(moved.split()[-1]) > 50
    await run_backup(file_config, full=True)
    repo = open_repository(file_config.primary_url or "")
    [snapshot] = reader.list_snapshots(repo)
    recipients = snapshot.table("recipients")
    assert recipients.rows == 400 and len(recipients.chunks) >= 3  # chunk_rows=150
    copied: dict[int, str] = {}
    for chunk in recipients.chunks:
        rows = list(reader.iter_chunk_rows(repo, recipients, chunk, None))
        ids = [int(row["id"] or 0) for row in rows]
        assert chunk.rows == len(rows) and not set(ids) & set(copied)
        copied.update((int(row["id"] or 0), row["birth_date"] or "") for row in rows)
        assert chunk.first_key == {"id": min(ids)} and chunk.last_key == {"id": max(ids)}
        # Which date columns have bounds depends on the statistics (autovacuum may have analyzed
        # the table): those that do hold the rows' min/max (the visits test below pins which).
        for column, (low, high) in chunk.bounds.items():
            values = [row[column] or "" for row in rows]
            assert (low[:10], high[:10]) == (min(values)[:10], max(values)[:10])
    assert copied == expected


async def test_snapshot_is_one_consistent_state_under_concurrent_writes(file_config: BackupConfig) -> None:
    """A writer adds a recipient and its dose in one transaction while the snapshot is copied by two
    workers: the image must hold both or neither for every pair."""
    await install_capture(file_config.database_url)
    stop = asyncio.Event()

    async def writer() -> int:
        conn = await asyncpg.connect(file_config.database_url)
        written = 0
        try:
            while not stop.is_set():
                async with conn.transaction():
                    rid = await conn.fetchval(
                        "INSERT INTO recipients (national_id, full_name, birth_date, sex, district_id, "
                        "center_id) "
                        "SELECT $1, 'Writer', DATE '1990-01-01', 'female', district_id, id FROM centers "
                        "ORDER BY id LIMIT 1 RETURNING id", f"{9_000_000_000 + written:010d}")
                    await conn.execute(
                        "INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number, "
                        "administered_on, center_id, recorded_by) SELECT $1, 1, code, 'W', CURRENT_DATE, "
                        "(SELECT min(id) FROM centers), 'writer' FROM vaccines ORDER BY code LIMIT 1", rid)
                written += 1
                await asyncio.sleep(0)
        finally:
            await conn.close()
        return written

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.2)
    await run_backup(file_config, full=True)
    stop.set()
    assert await task > 0
    repo = open_repository(file_config.primary_url or "")
    [snapshot] = reader.list_snapshots(repo)
    recipients = snapshot.table("recipients")
    doses = snapshot.table("doses")
    writer_recipients = {r["id"] for c in recipients.chunks
                         for r in reader.iter_chunk_rows(repo, recipients, c, None)
                         if r["full_name"] == "Writer"}
    writer_doses = {r["recipient_id"] for c in doses.chunks
                    for r in reader.iter_chunk_rows(repo, doses, c, None) if r["recorded_by"] == "writer"}
    assert writer_recipients and writer_recipients == writer_doses


async def test_chunks_stay_small_when_statistics_are_stale(database_url: str) -> None:
    """A bulk load the planner has not seen yet must not become one giant chunk (memory bound),
    and the block ranges still cover every row exactly once."""
    from backup.capture.catalog import describe_tables
    from backup.snapshot import plan_chunks

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE bulk (id bigint PRIMARY KEY, v text); "
                           "INSERT INTO bulk SELECT g, 'x' FROM generate_series(1, 10) g; ANALYZE bulk; "
                           "INSERT INTO bulk SELECT g, 'x' FROM generate_series(11, 20000) g")
        [bulk] = await describe_tables(conn, names=("bulk",))
        tasks = await plan_chunks(conn, bulk, 1000)
        sizes = [await conn.fetchval(f"SELECT count(*) FROM bulk WHERE {_range(t)}") for t in tasks]
        assert sum(sizes) == 20000 and max(sizes) <= 1000 and len(tasks) >= 20
    finally:
        await conn.close()


async def test_a_partitioned_table_is_copied_whole(database_url: str) -> None:
    """A partitioned table has no blocks of its own (pg_relation_size 0) and each partition
    numbers its own: planned by its size alone it was copied as empty."""
    from backup.capture.catalog import describe_tables
    from backup.snapshot import plan_chunks

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE TABLE parted (id bigint, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day); "
            "CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM ('2021-01-01') TO ('2021-07-01'); "
            "CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM ('2021-07-01') TO ('2022-01-01'); "
            "INSERT INTO parted SELECT g, date '2021-01-01' + g % 365 FROM generate_series(1, 3000) g")
        [parted] = await describe_tables(conn, names=("parted",))
        tasks = await plan_chunks(conn, parted, 1000)
        sizes = [await conn.fetchval(f"SELECT count(*) FROM parted WHERE {_range(t)}") for t in tasks]
        assert sum(sizes) == 3000
    finally:
        await conn.close()


VISITS = """
CREATE TABLE visits (id bigint PRIMARY KEY, seen_on date NOT NULL, born date, at timestamptz)
    WITH (autovacuum_enabled = off);
INSERT INTO visits SELECT g, date '2020-01-01' + g / 10, date '1950-01-01' + (g * 7919) % 20000,
    timestamptz '2020-01-01 00:00+00' + g * interval '1 hour' FROM generate_series(1, 3000) g;
ANALYZE visits;
"""


async def test_bounds_only_for_columns_in_heap_order_and_a_restore_still_finds_every_row(
        file_config: BackupConfig) -> None:
    """Chunks record date bounds only for columns whose statistics follow the heap order (seen_on,
    at), not for a scattered one (born). Adversarially, rows then move after the statistics were
    taken (their seen_on jumps years ahead, the new versions land in other blocks): the recorded
    bounds are still exact, and a restore by either column, pruned or not, finds every lost row."""
    from backup.restore.predicate import parse
    from backup.restore.records import RestoreRequest, plan_restore, restore_records

    conn = await asyncpg.connect(file_config.database_url)
    try:
        await conn.execute(VISITS)
        await conn.execute("UPDATE visits SET seen_on = date '2031-06-01' + (id % 5)::int WHERE id % 13 = 0")
    finally:
        await conn.close()
    await install_capture(file_config.database_url)
    await run_backup(file_config, full=True)
    repo = open_repository(file_config.primary_url or "")
    [snapshot] = reader.list_snapshots(repo)
    visits = snapshot.table("visits")
    assert len(visits.chunks) >= 10  # chunk_rows=150
    for chunk in visits.chunks:
        assert set(chunk.bounds) == {"seen_on", "at"}
        rows = list(reader.iter_chunk_rows(repo, visits, chunk, None))
        for column in ("seen_on", "at"):
            values = [row[column] or "" for row in rows]
            low, high = chunk.bounds[column]
            assert low[:10] == min(values)[:10] and high[:10] == max(values)[:10]
    as_of = await database_now(file_config.database_url)
    moved, early, scattered = ("seen_on = '2031-06-03'", "seen_on BETWEEN '2020-02-01' AND '2020-02-02'",
                               "born BETWEEN '1960-01-01' AND '1961-12-31'")
    conn = await asyncpg.connect(file_config.database_url)
    try:
        before = {r["id"]: r["image"] for r in await conn.fetch("SELECT id, v::text AS image FROM visits v")}
        for where in (moved, early, scattered):
            gone = await conn.fetch(f"DELETE FROM visits WHERE {where} RETURNING id")
            assert len(gone) > 0
    finally:
        await conn.close()
    reads: dict[str, tuple[int, int]] = {}
    for where in (moved, early, scattered):
        request = RestoreRequest(table="visits", as_of=as_of, where=parse(where))
        plan = await plan_restore(file_config.database_url, repo, None, request)
        reads[where] = (plan.chunks_read, plan.chunks_total)
        await restore_records(file_config.database_url, repo, None, request)
    conn = await asyncpg.connect(file_config.database_url)
    try:
        after = {r["id"]: r["image"] for r in await conn.fetch("SELECT id, v::text AS image FROM visits v")}
    finally:
        await conn.close()
    assert after == before
    # Pruned where bounds exist (the moved rows' chunks included), every chunk read where not.
    assert reads[moved][0] < reads[moved][1] and reads[early][0] <= 2
    assert reads[scattered][0] == reads[scattered][1]

