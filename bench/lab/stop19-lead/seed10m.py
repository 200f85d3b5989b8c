import sys, time
from bench.cluster import CACHE, seeded_database
from api.embedded_postgres import EmbeddedPostgres
c = EmbeddedPostgres(CACHE / "postgres10m"); c.start()
for n in (10000000, 100000, 1000000):
    t = time.time(); db = seeded_database(c, n); print(n, db.seed_seconds, time.time() - t, flush=True)
c.stop()
(CACHE / "postgres10m" / "READY").write_text("stopped; holds bench_10000000 (+100k, 1M)\n")
