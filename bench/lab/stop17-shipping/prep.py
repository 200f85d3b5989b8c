"""Prepare: scratch copy of bench_N with a full snapshot and the incident damage unshipped."""
import shutil, sys, time
from bench.cluster import CACHE, admin, clone_database, start_cluster, drop_database
from bench.process import run_pipeline
from bench.restore import lost_count
from bench.server import VAXVAULT

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
tag = sys.argv[2] if len(sys.argv) > 2 else ""
W = CACHE / "ship"
cluster = start_cluster()
repo, spool = W / f"repo{tag}-{n}", W / f"spool{tag}-{n}"
shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
base = f"ship_base{tag}_{n}"
url = clone_database(cluster, f"bench_{n}", base)
env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(), "VAXVAULT_BACKUP_SPOOL_DIR": str(spool)}
run_pipeline([[str(VAXVAULT), "backup", "init"]], env=env)
m = run_pipeline([[str(VAXVAULT), "backup", "run", "--full"]], env=env)
print("full", m)
lost = lost_count(n)
last_id = int(str(admin(url, f"SELECT id FROM doses WHERE dose_number = 1 ORDER BY id OFFSET {lost - 1} LIMIT 1")))
where = f"dose_number = 1 AND id <= {last_id}"
time.sleep(1.0)
from datetime import UTC, datetime
as_of = datetime.now(UTC).isoformat(timespec="seconds")
time.sleep(1.5)
t = time.perf_counter()
admin(url, f"UPDATE doses SET administered_on = NULL WHERE {where}")
print("damage update", round(time.perf_counter() - t, 2))
(W / f"incident-{n}.txt").write_text(f"{as_of}\n{where}\n")
damaged = f"ship_damaged{tag}_{n}"
admin(cluster.url(), f'DROP DATABASE IF EXISTS "{damaged}" WITH (FORCE)',
      f'CREATE DATABASE "{damaged}" TEMPLATE "{base}" STRATEGY FILE_COPY')
drop_database(cluster, base)
shutil.copytree(repo, W / f"repo{tag}-{n}.base", dirs_exist_ok=False) if not (W / f"repo{tag}-{n}.base").exists() else None
print("ready", damaged, as_of, where)
