"""Does a no-op run or `backup list` cost more as history grows? Time both against a file://
repository holding 10 and then N committed segments (copies of one real segment under older
ids), on a scratch copy of a seeded database.

    python -m bench.history --database-url URL [--segments 10,2000]

The copies are older than every real unit, so the run's own watermark logic is unaffected; the
repository and the database are scratch and thrown away.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from backup.capture.triggers import install
from backup.config import BackupConfig
from backup.inventory import inventory
from backup.runner import run_backup
from backup.stages import build_stages
from backup.storage import keys
from backup.storage.file import FileRepository
from backup.storage.manifest import ObjectRef, SegmentManifest, dump, load

ROUNDS = 3


def _fabricate(repo: Path, template: SegmentManifest, first: int, count: int) -> None:
    """`count` committed copies of `template` numbered from `first`, ids from 2020 on (older
    than any real unit)."""
    data = (repo / template.object.key).read_bytes()
    store = FileRepository(repo)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for n in range(first, first + count):
        segment_id = keys.format_id(start + timedelta(minutes=n))
        object_key = keys.format_segment_changes_key(segment_id)
        store.put(object_key, data)
        manifest = replace(template, id=segment_id,
                           object=ObjectRef(object_key, template.object.sha256, template.object.size))
        store.put(keys.format_segment_manifest_key(segment_id), dump(manifest))


def _best(seconds: list[float]) -> float:
    return round(min(seconds), 3)


async def _measure(config: BackupConfig) -> tuple[float, float]:
    """(no-op incremental run, list) in seconds, best of ROUNDS."""
    runs, lists = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        summary = await run_backup(config, full=False)
        runs.append(time.perf_counter() - started)
        assert summary.noop, summary
        stages = build_stages(FileRepository(config.spool_dir), config.primary_url, (), None)
        started = time.perf_counter()
        inventory(stages)
        lists.append(time.perf_counter() - started)
    return _best(runs), _best(lists)


async def main(database_url: str, sizes: list[int]) -> None:
    work = Path(tempfile.mkdtemp(prefix="vaxvault-history-"))
    try:
        repo = work / "repo"
        config = BackupConfig(database_url=database_url, spool_dir=work / "spool",
                              primary_url=repo.as_uri())
        conn = await asyncpg.connect(database_url)
        await install(conn)
        await run_backup(config, full=True)
        await conn.execute("UPDATE centers SET name = name || '' WHERE id = 1")
        await conn.close()
        segment = (await run_backup(config, full=False)).segment_id
        assert segment, "the one-row change was not cut into a segment"
        template = load((repo / keys.format_segment_manifest_key(segment)).read_bytes(), segment)
        assert isinstance(template, SegmentManifest)
        made = 0
        print("segments | no-op run s | list s")
        for size in sizes:
            if size - 1 > made:  # the real segment is one of the `size`
                _fabricate(repo, template, made, size - 1 - made)
                made = size - 1
            run_s, list_s = await _measure(config)
            print(f"{size:>8} | {run_s:>11} | {list_s:>6}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__)
    parser.add_argument("--database-url", required=True, help="a scratch database (capture is installed)")
    parser.add_argument("--segments", default="10,2000")
    args = parser.parse_args(sys.argv[1:])
    asyncio.run(main(args.database_url, [int(s) for s in args.segments.split(",")]))
