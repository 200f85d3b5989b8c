"""One `vaxvault backup run --full` of a scratch clone of the 1M bench database under py-spy
(every thread, native frames off), collapsed stacks to argv[1]; prints the run's JSON summary.
    PYTHONPATH=. .venv/bin/python /work/notes/snapshot-scripts/profile_ours.py /tmp/prof.txt [N]"""
import os, sys, shutil, subprocess
from bench import snapshot
from bench.cluster import start_cluster, seeded_database, clone_database
from bench.server import VAXVAULT
out = sys.argv[1]; n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
cluster = start_cluster(); db = seeded_database(cluster, n)
label = f"snap{n}"
name = f"bench_scratch_backup_{label}"
repo = snapshot.WORK / f"repo-{label}"; spool = snapshot.WORK / f"spool-{label}"
from bench.cluster import admin
if not admin(cluster.url(), f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
    url = clone_database(cluster, db.name, name)
else:
    url = cluster.url(name)
env = {**os.environ, "VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(),
       "VAXVAULT_BACKUP_SPOOL_DIR": str(spool)}
subprocess.run([str(VAXVAULT), "backup", "init"], check=True, env=env, capture_output=True)
shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
subprocess.run([py_spy, "record", "--threads", "--native", "--rate", "200", "--format", "raw", "-o", out, "--",
                str(VAXVAULT), "backup", "run", "--full", "--json"], env=env, check=False)
