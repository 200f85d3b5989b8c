"""Our server at two commits, same database, same run: req/s and CPU per request (server tree,
PostgreSQL cluster) per portal query, sides alternating each round (bench.cpu_ratio's measure).

  git worktree add --detach /tmp/before COMMIT
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-portal/ab_server.py /tmp/before ROUNDS SECONDS QUERY...
The "before" server runs this venv's vaxvault with PYTHONPATH=/tmp/before (its api package)."""
import os
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path

from bench import portal
from bench.cluster import seeded_database, start_cluster
from bench.compare import _population
from bench.cpu_ratio import _listener, _measure, _server_root
from bench.server import ours

before_tree, rounds, seconds, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
cluster = start_cluster()
db = seeded_database(cluster, 1_000_000)
population = _population(db.url, 1_000_000)
postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
got: dict[tuple[str, str], list[dict[str, float]]] = {}
with ExitStack() as stack:
    urls = {"before": stack.enter_context(ours(db.url, {"PYTHONPATH": before_tree})),
            "after": stack.enter_context(ours(db.url, {"PYTHONPATH": str(Path.cwd())}))}
    roots = {side: _server_root(_listener(url)) for side, url in urls.items()}
    for r in range(rounds):
        for name in names:
            for side in (("before", "after") if r % 2 else ("after", "before")):
                m = _measure(side, urls[side], name, portal.ours_requests, population, seconds, 16,
                             roots[side], postmaster)
                got.setdefault((name, side), []).append(m)
                print(f"r{r} {name} {side}: {m['rps']:.0f} req/s, server {m['server_ms']:.3f}, "
                      f"PostgreSQL {m['db_ms']:.3f} ms/req; load {os.getloadavg()[0]:.1f}",
                      flush=True)
for name in names:
    b, a = got[(name, "before")], got[(name, "after")]
    med = {k: (statistics.median(x[k] for x in b), statistics.median(x[k] for x in a))
           for k in ("rps", "server_ms", "db_ms")}
    print(f"MEDIAN {name}: req/s {med['rps'][0]:.0f} -> {med['rps'][1]:.0f}, server ms/req "
          f"{med['server_ms'][0]:.3f} -> {med['server_ms'][1]:.3f}, PostgreSQL ms/req "
          f"{med['db_ms'][0]:.3f} -> {med['db_ms'][1]:.3f}")
