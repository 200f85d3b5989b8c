"""Prepare once: rs_shipped_N (bench_N + full snapshot + the incident damage, shipped by an
incremental) as a template, its repository in CACHE/rs/repo-N.base, the incident in
CACHE/rs/incident-N.txt, and pg_dump -Fc of bench_N in CACHE/rs/bench_N.dump (pg_restore's file).
Run from the worktree: PYTHONPATH=. .venv/bin/python /work/notes/restorespeed-scripts/prep.py 1000000"""
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
repo, spool = W / f"repo-{n}", W / f"spool-{n}"
shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
base = f"rs_base_{n}"
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
print("incremental", run_pipeline([[str(VAXVAULT), "backup", "run", "--incremental"]], env=env), flush=True)
(W / f"incident-{n}.txt").write_text(f"{as_of}\n{where}\n")
shipped = f"rs_shipped_{n}"
admin(cluster.url(), f'DROP DATABASE IF EXISTS "{shipped}" WITH (FORCE)',
      f'CREATE DATABASE "{shipped}" TEMPLATE "{base}" STRATEGY FILE_COPY')
drop_database(cluster, base)
shutil.rmtree(W / f"repo-{n}.base", ignore_errors=True)
shutil.copytree(repo, W / f"repo-{n}.base")
dump = W / f"bench_{n}.dump"
if not dump.exists():
    run_pipeline([["pg_dump", "-Fc", "-f", str(dump), cluster.url(f"bench_{n}")]])
print("ready", shipped, as_of, where)
