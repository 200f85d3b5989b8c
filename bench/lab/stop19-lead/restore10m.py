"""Lab: the 10M lost-row restore alone (ours_full on a scratch clone, then lost_rows), twice the
restore's conditions of stop 18 (no pg_basebackup checkpoint just before)."""
import sys
from bench.cluster import start_cluster, database_name
from bench import snapshot, verify
from bench.restore import lost_rows
n = int(sys.argv[1])
c = start_cluster()
try:
    full, scratch = snapshot.ours_full(c, database_name(n), f"lab{n}")
    print("FULL", full.seconds, full.note, flush=True)
    for r in lost_rows(c, scratch, n):
        print("RESTORE", r.tool, r.seconds, r.note, flush=True)
    verify.remove_repository(scratch)
finally:
    c.stop()
