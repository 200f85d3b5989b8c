"""Start the bench cluster of this worktree, apply migrations to bench_1000000, print its URL."""
from bench.cluster import seeded_database, start_cluster
from bench import portal

cluster = start_cluster()
db = seeded_database(cluster, 1_000_000)
portal.install_peer_helpers(db.url)
print(db.url)
