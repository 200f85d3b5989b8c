import sys
from bench import snapshot
from bench.cluster import start_cluster, seeded_database
n = int(sys.argv[1])
cluster = start_cluster()
db = seeded_database(cluster, n)
dumps, dump = snapshot.dumps(db.url, f"pgbr{n}")
r = snapshot.pgbackrest_full(dump)
print(r)
dump.unlink()
