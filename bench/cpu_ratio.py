"""`python -m bench.cpu_ratio`: the portal queries, ours (compiled) against PostGraphile v4,
alternating sides for several rounds, with req/s and CPU per request (utime+stime from /proc)
of each server's process tree and of the whole PostgreSQL cluster during each wrk run.

CPU per request moves much less with the machine's load than req/s does, so it says where a
gap is (our process or the database) even on a shared machine. Prints one line per run and the
median ratio per query.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import portal
from bench.cluster import seeded_database, start_cluster
from bench.compare import _population
from bench.progress import say
from bench.server import ensure_postgraphile, ours, postgraphile
from bench.wrk import ensure_wrk

TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for p in pids:
        for task in Path(f"/proc/{p}/task").glob("*"):
            children = task / "children"
            if children.exists():
                pids += [int(c) for c in children.read_text().split()]
    return pids


def _cpu(pids: list[int]) -> dict[int, float]:
    """utime+stime of each process still there, seconds."""
    spent = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        spent[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return spent


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU between two readings; a process started in between counts from zero (a pool opens
    connections while loaded); one that ended in between is lost (none do in these runs)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def _listener(url: str) -> int:
    port = url.split(":")[2].split("/")[0]
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True,
                         text=True).stdout
    return int(out.split("pid=")[1].split(",")[0])


def _server_root(pid: int) -> int:
    """The top process of a server (uvicorn's supervisor above its workers)."""
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    cmd = Path(f"/proc/{parent}/cmdline").read_bytes()
    return parent if b"serve" in cmd else pid


def _measure(side: str, url: str, name: str, build: Any, population: portal.Population,
             seconds: int, connections: int, server: int, postmaster: int) -> dict[str, float]:
    before = (_cpu(_tree(server)), _cpu(_tree(postmaster)))
    result = portal.measure_one(side, url, name, build, population, seconds, connections,
                                threads=1)
    after = (_cpu(_tree(server)), _cpu(_tree(postmaster)))
    assert result.load is not None, result.note
    n = result.load.requests
    return {"rps": result.load.requests_per_s, "p99": result.load.p99_ms,
            "server_ms": 1000 * _spent(before[0], after[0]) / n,
            "db_ms": 1000 * _spent(before[1], after[1]) / n}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_ratio", description=__doc__)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("queries", nargs="*", default=list(portal.PORTAL_QUERIES))
    args = parser.parse_args(argv)
    ensure_wrk()
    ensure_postgraphile()
    cluster = start_cluster()
    db = seeded_database(cluster, args.recipients)
    portal.install_peer_helpers(db.url)
    population = _population(db.url, args.recipients)
    postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    ratios: dict[str, list[float]] = {q: [] for q in args.queries}
    with ours(db.url, workers=args.workers) as url, postgraphile(db.url) as peer_url:
        mine = _server_root(_listener(url))
        theirs = _listener(peer_url)
        for r in range(args.rounds):
            for name in args.queries:
                sides = [("compiled", url, portal.ours_requests, mine),
                         ("postgraphile", peer_url, portal.peer_requests, theirs)]
                if r % 2:
                    sides.reverse()
                got = {side: _measure(side, u, name, build, population, args.seconds,
                                      args.connections, procs, postmaster)
                       for side, u, build, procs in sides}
                a, b = got["compiled"], got["postgraphile"]
                ratios[name].append(a["rps"] / b["rps"])
                say(f"round {r} {name}: {a['rps'] / b['rps']:.2f}x ({a['rps']:.0f} vs "
                    f"{b['rps']:.0f} req/s; p99 {a['p99']:.0f} vs {b['p99']:.0f} ms) CPU ms/req "
                    f"server {a['server_ms']:.2f} vs {b['server_ms']:.2f}, PostgreSQL "
                    f"{a['db_ms']:.2f} vs {b['db_ms']:.2f}; load {os.getloadavg()[0]:.1f}")
    for name, values in ratios.items():
        say(f"{name}: median {statistics.median(values):.2f}x over {len(values)} rounds "
            f"({', '.join(f'{v:.2f}' for v in values)}), {args.workers} worker(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
