"""ALTER SYSTEM SET name = value ... on the bench cluster, then restart it.
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-scale/setconf.py shared_buffers=2GB [...]"""
import sys
from bench.cluster import admin, start_cluster
cluster = start_cluster()
for item in sys.argv[1:]:
    name, value = item.split("=", 1)
    admin(cluster.url(), f"ALTER SYSTEM SET {name} = '{value}'" if value != "DEFAULT" else f"ALTER SYSTEM RESET {name}")
cluster.stop(); cluster.start()
print(admin(cluster.url(), "SELECT current_setting('shared_buffers') || ' ' || current_setting('wal_compression')"))
