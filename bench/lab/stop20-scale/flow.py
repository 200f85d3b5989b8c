"""The bench's own backup section without its peers, at each size in turn (alternating order per
round): ours_full (clone + init + full snapshot), then bench.restore.lost_rows (damage, the
incremental that ships it, dry run, restore, second dry run), as `python -m bench --only backup`
runs them, on the cluster start_cluster() gives (its SETTINGS). Prints the bench's own figures,
the restore's CPU is not in them: wall only, so read with the load average.
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-scale/flow.py 1 1000000,10000000"""
import os, sys
from bench import snapshot, verify
from bench.cluster import admin, start_cluster
from bench.restore import lost_rows

rounds = int(sys.argv[1]); sizes = [int(s) for s in sys.argv[2].split(",")]
cluster = start_cluster()
print(admin(cluster.url(), "SELECT current_setting('shared_buffers') || ' ' || current_setting('max_wal_size')"))
snapshot.WORK.mkdir(parents=True, exist_ok=True)
for r in range(rounds):
    for n in (sizes if r % 2 == 0 else sizes[::-1]):
        load = os.getloadavg()[0]
        full, scratch = snapshot.ours_full(cluster, f"bench_{n}", f"flow{n}")
        results = lost_rows(cluster, scratch, n)
        verify.remove_repository(scratch)
        print(f"{n:>9} full {full.seconds} s load {load:.1f}->{os.getloadavg()[0]:.1f}", flush=True)
        for x in results:
            print(f"          {x.tool:45s} {x.seconds} s {x.peak_rss_mib} MiB {x.note[-420:] if x.note else ''}", flush=True)
