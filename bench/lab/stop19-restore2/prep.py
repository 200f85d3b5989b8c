"""Prepare once: rs_damaged_N (bench_N + backup init + full snapshot + the incident damage, NOT
shipped) as a template, its repository in CACHE/rs/repo-N.full, the incident in
CACHE/rs/incident-N.txt, pg_dump -Fc of bench_N in CACHE/rs/bench_N.dump.
Then ship.py cuts the incremental with the checked-out code (the segment format is what changes).
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-restore2/prep.py 1000000"""
import shutil, sys, time
from datetime import UTC, datetime
from bench.cluster import CACHE, admin, clone_database, start_cluster, drop_database
from bench.process import run_pipeline
from bench.restore import lost_count
from bench.server import VAXVAULT

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
W = CACHE / "rs"
W.mkdir(exist_ok=True)
cluster = start_cluster()
repo, spool = W / f"repo-{n}.full", W / f"spool-{n}"
shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
base = f"rs_damaged_{n}"
url = clone_database(cluster, f"bench_{n}", base)
env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(), "VAXVAULT_BACKUP_SPOOL_DIR": str(spool)}
run_pipeline([[str(VAXVAULT), "backup", "init"]], env=env)
print("full", run_pipeline([[str(VAXVAULT), "backup", "run", "--full"]], env=env), flush=True)
lost = lost_count(n)
last_id = int(str(admin(url, f"SELECT id FROM doses WHERE dose_number = 1 ORDER BY id OFFSET {lost - 1} LIMIT 1")))
where = f"dose_number = 1 AND id <= {last_id}"
time.sleep(1.0)
as_of = datetime.now(UTC).isoformat(timespec="seconds")
time.sleep(1.5)
admin(url, f"UPDATE doses SET administered_on = NULL WHERE {where}")
(W / f"incident-{n}.txt").write_text(f"{as_of}\n{where}\n")
shutil.rmtree(spool, ignore_errors=True)
dump = W / f"bench_{n}.dump"
if not dump.exists():
    run_pipeline([["pg_dump", "-Fc", "-f", str(dump), cluster.url(f"bench_{n}")]])
print("ready", base, as_of, where)
