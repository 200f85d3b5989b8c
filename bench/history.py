"""Does a no-op run or `backup list` cost more as history grows? Time both against a repository
holding 10 and then N committed segments (copies of one real segment under older ids), on a
scratch copy of a seeded database: on file://, and on S3 over HTTP (a moto server in its own
process) with --s3. With --peer-tree, the same file:// measurement by another checkout's own
bench/history.py (main: every run lists each stage in full) runs in the same session, before
and after ours, so the two sides see the same machine.

    python -m bench.history --database-url URL [--segments 10,100,500,2000] [--s3]
        [--peer-tree /work/main] [--json FILE] [--chart FILE.png]

The copies are older than every real unit and are written behind the index's back, so after
writing them the bench deletes the index (as an operator would after `backup verify` said it
disagrees) and times the first run separately: it lists in full and rebuilds the index. The
repository and the database are scratch and thrown away.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from api.cli.backup_list import list_output
from backup.capture.triggers import install
from backup.config import BackupConfig
from backup.runner import run_backup
from backup.stages import build_stages
from backup.storage import keys
from backup.storage.file import FileRepository
from backup.storage.index import INDEX_KEY
from backup.storage.manifest import ObjectRef, SegmentManifest, dump, load
from backup.storage.repository import Repository, open_repository

ROUNDS = 3
RUN = "no-op incremental run"
LIST = "backup list"
LIST_ALL = "backup list --all"
LIST_CPU = "backup list CPU"
LIST_ALL_CPU = "backup list --all CPU"


def _fabricate(store: Repository, template: SegmentManifest, data: bytes, first: int, count: int) -> None:
    """`count` committed copies of `template` numbered from `first`, ids from 2020 on (older
    than any real unit)."""
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for n in range(first, first + count):
        segment_id = keys.format_id(start + timedelta(minutes=n))
        object_key = keys.format_segment_changes_key(segment_id)
        store.put(object_key, data)
        manifest = replace(template, id=segment_id,
                           object=ObjectRef(object_key, template.object.sha256, template.object.size))
        store.put(keys.format_segment_manifest_key(segment_id), dump(manifest))


def _best(seconds: list[float]) -> float:
    return round(min(seconds), 4)


async def _measure(config: BackupConfig) -> dict[str, float]:
    """No-op incremental run, `backup list` and `backup list --all` (the text and JSON the
    command prints, built in this process) in seconds, best of ROUNDS; the lists also in CPU
    seconds of this process (on file:// that is all their work; load inflates it little)."""
    times: dict[str, list[float]] = {RUN: [], LIST: [], LIST_ALL: [], LIST_CPU: [], LIST_ALL_CPU: []}
    for _ in range(ROUNDS):
        started = time.perf_counter()
        summary = await run_backup(config, full=False)
        times[RUN].append(time.perf_counter() - started)
        assert summary.noop, summary
        stages = build_stages(FileRepository(config.spool_dir), config.primary_url, (),
                              config.s3_endpoint_url)
        for every, wall, cpu in ((False, LIST, LIST_CPU), (True, LIST_ALL, LIST_ALL_CPU)):
            started, cpu_started = time.perf_counter(), time.process_time()
            list_output(stages, None, every)
            times[wall].append(time.perf_counter() - started)
            times[cpu].append(time.process_time() - cpu_started)
    return {what: _best(seconds) for what, seconds in times.items()}


async def measure(database_url: str, sizes: list[int], primary_url: str,
                  s3_endpoint_url: str | None) -> list[dict[str, Any]]:
    """One row per size: run and list seconds, and the first run after the index was deleted."""
    work = Path(tempfile.mkdtemp(prefix="vaxvault-history-"))
    rows = []
    try:
        config = BackupConfig(database_url=database_url, spool_dir=work / "spool",
                              primary_url=primary_url, s3_endpoint_url=s3_endpoint_url)
        repo = open_repository(primary_url, s3_endpoint_url)
        conn = await asyncpg.connect(database_url)
        await install(conn)
        await run_backup(config, full=True)
        await conn.execute("UPDATE centers SET name = name || '' WHERE id = 1")
        await conn.close()
        segment = (await run_backup(config, full=False)).segment_id
        assert segment, "the one-row change was not cut into a segment"
        template = load(repo.get(keys.format_segment_manifest_key(segment)), segment)
        assert isinstance(template, SegmentManifest)
        data = repo.get(template.object.key)
        made = 0
        for size in sizes:
            if size - 1 > made:  # the real segment is one of the `size`
                _fabricate(repo, template, data, made, size - 1 - made)
                made = size - 1
            repo.delete(INDEX_KEY)
            started = time.perf_counter()
            assert (await run_backup(config, full=False)).noop
            rebuild = round(time.perf_counter() - started, 4)
            found = await _measure(config)
            rows.append({"segments": size, **found, "first run without index": rebuild})
            print(f"{size:>8} | {found[RUN]:>11} | {found[LIST]:>7} | {found[LIST_ALL]:>7} | "
                  f"{found[LIST_CPU]:>7} | {found[LIST_ALL_CPU]:>7} | {rebuild:>8}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _peer(tree: Path, database_url: str, sizes: list[int]) -> list[dict[str, Any]]:
    """The file:// measurement by `tree`'s own bench/history.py, in a process importing only
    that checkout (its table: segments | no-op run s | list s)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-m", "bench.history", "--database-url", database_url,
                          "--segments", ",".join(map(str, sizes))],
                         cwd=tree, env=env, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 3 and re.fullmatch(r"\d+", cells[0]):
            rows.append({"segments": int(cells[0]), RUN: float(cells[1]), LIST: float(cells[2])})
    return rows


class MotoServer:
    """An S3 endpoint over HTTP in its own process (in ours it would share the GIL with the run)."""

    def __enter__(self) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-p", str(port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        # moto accepts any credentials; boto3 only needs some to sign with.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "bench")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                return url
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("moto_server did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait()


def _bucket(endpoint: str) -> str:
    import boto3

    name = f"history-{int(time.time())}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def draw(results: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    from bench.charts import log_log, plt, save

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, what in zip(axes, (RUN, LIST), strict=True):
        for label, rows in results.items():
            ax.plot([r["segments"] for r in rows], [r[what] for r in rows], marker="o",
                    linestyle="--" if label.startswith("main") else "-", label=label)
            if what == LIST and LIST_ALL in rows[0]:
                ax.plot([r["segments"] for r in rows], [r[LIST_ALL] for r in rows], marker="x",
                        linestyle=":", label=f"{label}, --all")
        log_log(ax, "segments in the repository", "seconds (best of 3)", what)
    peer = any(label.startswith("main") for label in results)
    return save(figure, "Cost against history" + (" (dashed: main, every run lists each stage in full)"
                                                  if peer else " (dotted: backup list --all)"), path)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a scratch database (capture is installed)")
    parser.add_argument("--segments", default="10,2000")
    parser.add_argument("--s3", action="store_true", help="also on S3 over HTTP (moto_server)")
    parser.add_argument("--peer-tree", type=Path, help="another checkout to measure the same way (file://)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--chart", type=Path, help="draw them here (PNG)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.segments.split(",")]
    results: dict[str, list[dict[str, Any]]] = {}
    peer_rounds: list[list[dict[str, Any]]] = []
    if args.peer_tree:
        print(f"peer {args.peer_tree} (file://)", flush=True)
        peer_rounds.append(_peer(args.peer_tree, args.database_url, sizes))
    print("segments | no-op run s | list s | list --all s | list CPU s | list --all CPU s | "
          "first run without index s")
    with tempfile.TemporaryDirectory(prefix="vaxvault-history-repo-") as repo:
        print("this tree, file://", flush=True)
        results["this tree, file://"] = asyncio.run(measure(args.database_url, sizes,
                                                            Path(repo).as_uri(), None))
    if args.s3:
        with MotoServer() as endpoint:
            print("this tree, S3 (moto over HTTP)", flush=True)
            results["this tree, S3 over HTTP"] = asyncio.run(measure(
                args.database_url, sizes, f"s3://{_bucket(endpoint)}/history", endpoint))
    if args.peer_tree:
        peer_rounds.append(_peer(args.peer_tree, args.database_url, sizes))
        label = f"main ({args.peer_tree}), file://"
        results[label] = [{"segments": rows[0]["segments"], RUN: min(r[RUN] for r in rows),
                           LIST: min(r[LIST] for r in rows)} for rows in zip(*peer_rounds, strict=True)]
        print(f"peer, best of its two passes: {results[label]}")
    load = os.getloadavg()
    payload = {"load_average": [round(x, 2) for x in load], "rounds": ROUNDS, "results": results}
    if args.json:
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    if args.chart:
        print(f"chart: {draw(results, args.chart)}")
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
