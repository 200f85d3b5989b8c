"""CPU per request by PostgreSQL process kind (backends, walwriter, autovacuum, ...) and of the
server, for one or more portal queries, ours and/or PostGraphile, alternating rounds:

  PYTHONPATH=. .venv/bin/python bench/lab/stop19-compiled3/pgcpu.py [--peer] [--rounds N]
      [--seconds S] [--workers W] QUERY...
"""
import argparse
import os
import random
import statistics
from collections import defaultdict
from pathlib import Path

from bench import portal, wrk
from bench.cluster import seeded_database, start_cluster
from bench.compare import _population
from bench.cpu_ratio import _cpu, _listener, _server_root, _tree
from bench.server import ours, postgraphile


def kinds(postmaster: int) -> dict[int, str]:
    out = {}
    for pid in _tree(postmaster):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except FileNotFoundError:
            continue
        if pid == postmaster:
            out[pid] = "postmaster"
        elif cmd.startswith("postgres: ") and "postgres bench" in cmd:
            out[pid] = "backend"
        else:
            out[pid] = cmd.replace("postgres: ", "").split()[0]
    return out


def spent_by_kind(postmaster: int, before: dict[int, float]) -> dict[str, float]:
    after = _cpu(list(kinds(postmaster)))
    k = kinds(postmaster)
    totals: dict[str, float] = defaultdict(float)
    for pid, t in after.items():
        totals[k.get(pid, "?")] += t - before.get(pid, 0.0)
    return totals


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("queries", nargs="+")
    a = ap.parse_args()
    cluster = start_cluster()
    db = seeded_database(cluster, 1_000_000)
    population = _population(db.url, 1_000_000)
    postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    results: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    from contextlib import ExitStack
    with ExitStack() as stack:
        sides = [("ours", stack.enter_context(ours(db.url, workers=a.workers)),
                  portal.ours_requests)]
        if a.peer:
            sides.append(("peer", stack.enter_context(postgraphile(db.url)),
                          portal.peer_requests))
        for side, url, build in sides:  # warm
            wrk.run(url, build(a.queries[0], population, random.Random(0)), seconds=3,
                    connections=a.connections, threads=1)
        for r in range(a.rounds):
            order = sides if r % 2 == 0 else sides[::-1]
            for q in a.queries:
                for side, url, build in order:
                    server = _server_root(_listener(url)) if side == "ours" else _listener(url)
                    reqs = build(q, population, random.Random(f"{q}-1000000"))
                    s0 = _cpu(_tree(server))
                    p0 = _cpu(list(kinds(postmaster)))
                    load = wrk.run(url, reqs, seconds=a.seconds, threads=1,
                                   connections=a.connections)
                    pk = spent_by_kind(postmaster, p0)
                    s1 = _cpu(_tree(server))
                    n = load.requests
                    row = {"rps": load.requests_per_s, "p99": load.p99_ms,
                           "server": 1000 * sum(s1[p] - s0.get(p, 0) for p in s1) / n,
                           **{k: 1000 * v / n for k, v in pk.items()}}
                    results[(q, side)].append(row)
                    print(f"r{r} {q} {side}: " + ", ".join(
                        f"{k} {v:.3f}" if k not in ("rps", "p99") else f"{k} {v:.0f}"
                        for k, v in row.items() if v) + f"; load {os.getloadavg()[0]:.1f}",
                          flush=True)
    for (q, side), rows in results.items():
        keys = sorted({k for r in rows for k in r})
        print(f"MEDIAN {q} {side}: " + ", ".join(
            f"{k} {statistics.median(r.get(k, 0) for r in rows):.3f}" for k in keys))


main()
