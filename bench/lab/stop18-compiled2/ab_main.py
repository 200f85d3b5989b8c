"""Same-run A/B of two builds of our server on the 1M bench database: this worktree's code (B)
against another checkout (A, e.g. main) run with the same venv via PYTHONPATH; PostGraphile v4
alongside as the yardstick. Alternates sides per round; prints req/s and CPU ms per request of
the server process and of the whole PostgreSQL cluster.

  cd /work/wt/compiled2 && PYTHONPATH=. .venv/bin/python /work/notes/compiled2-scripts/ab_main.py \
      /work/wt/compiled2-base ROUNDS SECONDS [QUERY...]
"""
import os
import statistics
import sys

from bench import portal
from bench.cluster import seeded_database, start_cluster
from bench.compare import _population
from bench.cpu_ratio import _listener, _measure, _server_root
from bench.progress import say
from bench.server import ensure_postgraphile, ours, postgraphile

base, rounds, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
queries = sys.argv[4:] or ["recipient_with_doses", "recipient_with_doses_staff",
                           "center_latest_doses", "me_recipient"]
ensure_postgraphile()
cluster = start_cluster()
db = seeded_database(cluster, 1_000_000)
portal.install_peer_helpers(db.url)
population = _population(db.url, 1_000_000)
postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
got: dict[tuple[str, str], list[dict]] = {}
with ours(db.url, extra_env={"PYTHONPATH": base}) as url_a, ours(db.url) as url_b, \
        postgraphile(db.url) as url_p:
    sides = [("A " + base.rstrip("/").split("/")[-1], url_a, portal.ours_requests,
              _server_root(_listener(url_a))),
             ("B this branch", url_b, portal.ours_requests, _server_root(_listener(url_b))),
             ("PostGraphile", url_p, portal.peer_requests, _listener(url_p))]
    for r in range(rounds):
        for name in queries:
            order = sides if r % 2 == 0 else list(reversed(sides))
            for side, url, build, pid in order:
                m = _measure(side, url, name, build, population, seconds, 16, pid, postmaster)
                got.setdefault((name, side), []).append(m)
                say(f"r{r} {name:28s} {side:16s} {m['rps']:7.0f} req/s  server "
                    f"{m['server_ms']:.2f} ms/req  PostgreSQL {m['db_ms']:.2f} ms/req  p99 "
                    f"{m['p99']:.0f} ms  load {os.getloadavg()[0]:.1f}")
for name in queries:
    for side, *_ in sides:
        ms = got[(name, side)]
        say(f"median {name:28s} {side:16s} {statistics.median(m['rps'] for m in ms):7.0f} req/s "
            f"server {statistics.median(m['server_ms'] for m in ms):.2f} PostgreSQL "
            f"{statistics.median(m['db_ms'] for m in ms):.2f} ms/req")
