"""`python -m bench.compare`: the portal queries on the compiled path, on the strawberry path
and on PostGraphile v4, run back to back per query, with 1 and 2 workers, plus the pgbench
ceiling of the compiled SQL. Writes bench/results/<date>-<machine>-portal.json and the portal
section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench import ceiling, machine, portal, report, wrk
from bench.__main__ import _sizes
from bench.cluster import admin, seeded_database, start_cluster
from bench.progress import say
from bench.server import ensure_postgraphile, ours, postgraphile
from bench.wrk import ensure_wrk

WARM_UP_S = 3


def _population(url: str, recipients: int) -> portal.Population:
    centers = int(str(admin(url, "SELECT count(*) FROM centers")))
    rows = json.loads(str(admin(url, "SELECT json_agg(json_build_array(center_id, id)) FROM "
                                     f"(SELECT center_id, id FROM recipients ORDER BY "
                                     f"hashint4(id::int) LIMIT {portal.ROTATION}) s")))
    return portal.Population(recipients, centers, tuple((c, r) for c, r in rows))


def _rss_mib(url: str) -> list[float]:
    """Resident memory of the server on `url` and its worker processes, MiB each."""
    port = urlparse(url).port
    found = subprocess.run(["pgrep", "-f", f"serve --port {port}"], capture_output=True,
                           text=True).stdout.split()
    pids = list(found)
    for pid in found:
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            pids += children.read_text().split()
    sizes = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status")
        for line in status.read_text().splitlines() if status.exists() else []:
            if line.startswith("VmRSS:"):
                sizes.append(round(int(line.split()[1]) / 1024, 1))
    return sizes


def _one_size(cluster: Any, recipients: int, seconds: int, connections: int) -> dict[str, Any]:
    db = seeded_database(cluster, recipients)
    portal.install_peer_helpers(db.url)
    population = _population(db.url, recipients)
    say(f"== {recipients:,} recipients")
    rows: list[dict[str, Any]] = []
    memory: dict[str, list[float]] = {}
    for workers in (1, 2):
        with ours(db.url, workers=workers) as url, postgraphile(db.url) as peer_url:
            # Both servers warm before anything is recorded: without this the first query ran
            # on a freshly started node process (PostGraphile's admin recipient-with-doses
            # came out at a fifth of its rate later in the same runs).
            for side_url, build in ((url, portal.ours_requests), (peer_url, portal.peer_requests)):
                wrk.run(side_url, build(portal.PORTAL_QUERIES[0], population, random.Random(0)),
                        seconds=WARM_UP_S, connections=connections, threads=1)
            for name in portal.PORTAL_QUERIES:
                compiled = portal.measure_one(f"compiled, {workers}w", url, name,
                                              portal.ours_requests, population, seconds,
                                              connections, threads=1)
                fallback = portal.measure_one(
                    f"strawberry, {workers}w", url, name,
                    lambda n, p, r: portal.ours_requests(n, p, r, portal.STRAWBERRY_ACCEPT),
                    population, seconds, connections, threads=1)
                peer = portal.measure_one("postgraphile", peer_url, name, portal.peer_requests,
                                          population, seconds, connections, threads=1)
                rows += [{**r.as_dict(), "workers": workers} for r in (compiled, fallback, peer)]
            memory[f"{workers}w"] = _rss_mib(url)
    ceilings = []
    for name in ceiling.CEILING_QUERIES:
        text = ceiling.script(name, recipients, population.centers)
        tps = ceiling.pgbench(str(cluster.bindir), db.url, text, seconds, connections)
        say(f"pgbench {name}: {tps:,.0f} tps")
        ceilings.append({"query": name, "tps": round(tps, 1)})
    return {"recipients": recipients, "graphql": rows, "ceiling": ceilings,
            "rss_mib": memory}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--sizes", type=_sizes, default=(100_000,))
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--render", metavar="RESULTS_JSON", nargs="+",
                        help="only rewrite the portal section of BENCHMARKS.md from results "
                             "files (their sizes shown together, in the order given)")
    args = parser.parse_args(argv)
    if args.render:
        runs = [json.loads(Path(name).read_text()) for name in args.render]
        results = {**runs[0], "sizes": [size for run in runs for size in run["sizes"]],
                   "command": "; ".join(run["command"] for run in runs),
                   "finished_at": runs[-1].get("finished_at")}
        path = Path(args.render[0]).resolve()
    else:
        ensure_wrk()
        peer_version = ensure_postgraphile()
        cluster = start_cluster()
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        load_at_start = os.getloadavg()[0]
        results = {"started_at": started, "command": "python -m bench.compare " + " ".join(argv),
                   "machine": machine.describe(cluster.bindir, peer_version),
                   "load": {"wrk_threads": 1, "connections": args.connections,
                            "seconds": args.seconds},
                   "sizes": [_one_size(cluster, n, args.seconds, args.connections)
                             for n in args.sizes]}
        results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        results["load_average"] = [round(load_at_start, 2), round(os.getloadavg()[0], 2)]
        sizes = "-".join(f"{n // 1000}k" for n in args.sizes)
        path = report.write_results(results,
                                    f"{started[:10]}-{machine.short_name()}-portal-{sizes}")
    paths = [Path(name).resolve() for name in args.render] if args.render else [path]
    report.write_portal_section(results, ", ".join(f"`{p.relative_to(report.ROOT)}`"
                                                   for p in paths))
    say(f"wrote {path} and the portal section of {report.BENCHMARKS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
