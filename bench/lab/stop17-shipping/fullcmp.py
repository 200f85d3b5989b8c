"""Full backups at N, alternating: ours (backup run --full), pg_dump | zstd -3, pgBackRest full."""
import os, sys, time, json
from bench import snapshot, pgbackrest_peer
from bench.cluster import start_cluster, seeded_database, drop_database
from bench.process import run_pipeline
n = int(sys.argv[1]); rounds = int(sys.argv[2])
cluster = start_cluster()
db = seeded_database(cluster, n)
label = f"cmp{n}"
results = []
def ours():
    r, scratch = snapshot.ours_full(cluster, db.name, label)
    drop_database(cluster, scratch.name)
    return r
def zstd():
    out = snapshot.WORK / f"{label}.sql.zst"
    m = run_pipeline([["pg_dump", db.url], ["zstd", "-3", "-q", "-c"]], out)
    size = out.stat().st_size; out.unlink()
    return snapshot.SnapshotResult("pg_dump | zstd -3", "", True, m.seconds, size, m.peak_rss_mib)
dump = snapshot.WORK / f"{label}.dump"
snapshot.WORK.mkdir(parents=True, exist_ok=True)
run_pipeline([["pg_dump", "-Fc", "-f", str(dump), db.url]])
source, config, first = pgbackrest_peer.full_backup(dump, pgbackrest_peer.LIKE_OURS)
dump.unlink()
def pgbr(state={"first": first}):
    if state.get("first"):
        m = state.pop("first")
    else:
        source.start()
        m = run_pipeline([pgbackrest_peer._as_user(source, "pgbackrest", f"--config={config}", "--stanza=bench", "--type=full", "backup")])
        source.stop()
    return snapshot.SnapshotResult("pgbackrest full", "", True, m.seconds, pgbackrest_peer.repository_bytes(), m.peak_rss_mib)
sides = [("pgbackrest", pgbr), ("ours", ours), ("zstd", zstd)]
for r in range(rounds):
    order = sides if r % 2 == 0 else sides[::-1]
    for name, fn in order:
        load = os.getloadavg()[0]
        res = fn()
        print(f"round {r} {name:10s} {res.seconds:7.2f} s {res.bytes:>12,} B peak {res.peak_rss_mib} MiB load {load:.1f}", flush=True)
source.destroy()
