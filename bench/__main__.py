"""`python -m bench`: set everything up (cached), measure each side next to its peer, write
bench/results/<date>-<machine>.json and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import machine, portal, report, snapshot, verify, writes
from bench.cluster import CACHE, SeededDatabase, admin, seeded_database, start_cluster
from bench.progress import say
from bench.restore import lost_rows
from bench.server import ensure_postgraphile, ours, postgraphile
from bench.wrk import ensure_wrk

FULL_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (100_000,)
# The parts of a run; `--only` picks some (the GraphQL loads at 10M take long, and a person
# measuring backup and restore does not need them).
PARTS = ("graphql", "backup", "writes")


def _sizes(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in value.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of counts") from exc
    if not sizes or min(sizes) < 1000:
        raise argparse.ArgumentTypeError(f"{value!r}: every size must be at least 1000 recipients")
    return sizes


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="100k recipients, 3 s loads; prints the report instead of writing it")
    parser.add_argument("--sizes", type=_sizes, help="recipient counts, e.g. 100000,1000000")
    parser.add_argument("--seconds", type=int, help="wrk duration per query and side (default 10)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--only", choices=PARTS, action="append",
                        help="measure only this part (repeatable): graphql (section 1), backup "
                             "(sections 2, 3 and the backup and restore rows of 5), writes "
                             "(section 4); default all")
    parser.add_argument("--pgbackrest-up-to", type=int, metavar="RECIPIENTS",
                        help="measure pgBackRest's full backup only up to this size (its setup "
                             "copies the bench cluster with pg_basebackup: ~9 GB at 10M)")
    parser.add_argument("--render", metavar="RESULTS_JSON",
                        help="only regenerate BENCHMARKS.md from a results file")
    return parser.parse_args(argv)


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _graphql(db: SeededDatabase, population: portal.Population, seconds: int,
             connections: int) -> list[dict[str, Any]]:
    portal.install_peer_helpers(db.url)
    results = []
    with ours(db.url) as url:
        results += portal.measure("ours", url, portal.ours_requests, population, seconds, connections,
                                  log=CACHE / "vaxvault.log")
    with postgraphile(db.url) as url:
        results += portal.measure("postgraphile", url, portal.peer_requests, population, seconds,
                                  connections)
    return [r.as_dict() for r in results]


def _pgbackrest(cluster: Any, db: SeededDatabase, up_to: int | None) -> dict[str, Any]:
    if up_to is not None and db.recipients > up_to:
        return snapshot.SnapshotResult(
            "pgbackrest backup --type=full", "", False,
            note=f"not measured above {up_to:,} recipients in this run (--pgbackrest-up-to)").as_dict()
    return snapshot.pgbackrest_full(cluster, db.name).as_dict()


def _backup(cluster: Any, db: SeededDatabase, label: str, pgbackrest_up_to: int | None
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sections 2 and 3: the full snapshot beside its peers, the lost-record restore beside
    pg_restore, and the deep verification of the repository those runs left."""
    dumps, dump_file = snapshot.dumps(db.url, label)
    full, scratch = snapshot.ours_full(cluster, db.name, label)
    restores = [r.as_dict() for r in lost_rows(cluster, scratch, db.recipients)]
    if scratch is not None:
        restores.append(verify.verify_deep(scratch).as_dict())
        verify.remove_repository(scratch)
    restores.append(snapshot.pg_restore_full(cluster, dump_file, label).as_dict())
    dump_file.unlink()
    # pgBackRest last: its pg_basebackup copy reads and writes the whole cluster (19 GB at 10M
    # through a 24 GB page cache), and a restore measured after it ran on a cold cache (10M:
    # 29.1 s right after it, 17.4 s in a run without it).
    snapshots = [full.as_dict(), *(r.as_dict() for r in dumps),
                 _pgbackrest(cluster, db, pgbackrest_up_to)]
    return snapshots, restores


def _one_size(cluster: Any, recipients: int, seconds: int, connections: int,
              write_seconds: int, parts: tuple[str, ...],
              pgbackrest_up_to: int | None = None) -> dict[str, Any]:
    db = seeded_database(cluster, recipients)
    doses = int(str(admin(db.url, "SELECT count(*) FROM doses")))
    centers = int(str(admin(db.url, "SELECT count(*) FROM centers")))
    database_bytes = int(str(admin(db.url, "SELECT pg_database_size(current_database())")))
    label = f"{recipients}"
    say(f"== {recipients:,} recipients, {doses:,} doses, {database_bytes / 2**20:,.0f} MiB")
    graphql = (_graphql(db, portal.Population(recipients, centers), seconds, connections)
               if "graphql" in parts else [])
    snapshots, restores = _backup(cluster, db, label, pgbackrest_up_to) if "backup" in parts else ([], [])
    return {
        "recipients": recipients, "doses": doses, "centers": centers,
        "database_bytes": database_bytes, "seed_seconds": db.seed_seconds,
        "load_average": [round(v, 1) for v in os.getloadavg()],
        "parts": list(parts),
        "graphql": graphql, "snapshot": snapshots, "restore": restores,
        "writes": ([w.as_dict() for w in writes.measure(cluster, db.name, recipients, write_seconds)]
                   if "writes" in parts else []),
    }


def _growth_picture(results: dict[str, Any], results_path: Path) -> str | None:
    """Draw the cost-growth PNG beside the results file; its path relative to the repository,
    or None when matplotlib (the `bench` extra) is missing or one size shows no growth."""
    try:
        from bench.charts import draw_growth
    except ImportError:
        say("no growth picture: install the bench extra (pip install -e '.[bench]')")
        return None
    drawn = draw_growth(results, results_path.with_suffix(".growth.png"))
    return str(drawn.relative_to(report.ROOT)) if drawn else None


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.render:
        path = Path(args.render).resolve()
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"bench: cannot read results {args.render!r}: {exc}", file=sys.stderr)
            return 1
        report.BENCHMARKS.write_text(report.render(results, str(path.relative_to(report.ROOT)),
                                                   _growth_picture(results, path)))
        say(f"wrote {report.BENCHMARKS} from {path}")
        return 0
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    parts = tuple(part for part in PARTS if part in (args.only or PARTS))
    seconds = args.seconds or (3 if args.quick else 10)
    write_seconds = 3 if args.quick else 10
    started = _stamp()
    if "graphql" in parts:
        ensure_wrk()
    peer_version = ensure_postgraphile() if "graphql" in parts else "not used (--only)"
    cluster = start_cluster()
    results: dict[str, Any] = {
        "started_at": started,
        "command": "python -m bench " + " ".join(argv) if argv else "make bench",
        "machine": machine.describe(cluster.bindir, peer_version),
        "load": {"threads": 2, "connections": args.connections, "seconds": seconds,
                 "write_seconds": write_seconds},
        "parts": list(parts),
        "load_average_at_start": [round(v, 1) for v in os.getloadavg()],
        "sizes": [],
        "notes": [],
    }
    name = f"{started[:10]}-{machine.short_name()}{'-quick' if args.quick else ''}"
    # Quick runs are for development: their results stay in the git-ignored cache.
    directory = CACHE / "results" if args.quick else report.RESULTS
    for recipients in sizes:
        results["sizes"].append(_one_size(cluster, recipients, seconds, args.connections,
                                          write_seconds, parts, args.pgbackrest_up_to))
        # Written after every size: a 10M run cut short still leaves the smaller sizes, which
        # `--render` turns into BENCHMARKS.md.
        results["finished_at"] = f"(interrupted after {recipients:,} recipients)"
        report.write_results(results, name, directory)
    results["finished_at"] = _stamp()
    path = report.write_results(results, name, directory)
    markdown = report.render(results, str(path.relative_to(report.ROOT)), _growth_picture(results, path))
    if args.quick:
        print(markdown)
    else:
        report.BENCHMARKS.write_text(markdown)
        say(f"wrote {path} and {report.BENCHMARKS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
