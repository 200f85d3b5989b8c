"""Prepare once, with the checked-out code: rs_shipped_N (bench_N + backup init + full snapshot +
the incident damage + the incremental that ships it) as the template trial.py clones, its
repository in CACHE/rs/repo-N.base, the incident in CACHE/rs/incident-N.txt. No dump (no peer).
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-scale/prep.py 1000000"""
import shutil, sys, time
from datetime import UTC, datetime
from pathlib import Path
from bench.cluster import CACHE, admin, clone_database, start_cluster
from bench.restore import lost_count
from bench.server import VAXVAULT
sys.path.insert(0, str(Path(__file__).parent.parent / "stop19-restore2"))  # its cpu.py
from cpu import measured

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
W = CACHE / "rs"
W.mkdir(exist_ok=True)
cluster = start_cluster()
repo, spool = W / f"repo-{n}.base", W / f"spool-{n}"
shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
url = clone_database(cluster, f"bench_{n}", f"rs_shipped_{n}")
env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(), "VAXVAULT_BACKUP_SPOOL_DIR": str(spool)}
measured(cluster, "init", [[str(VAXVAULT), "backup", "init"]], env=env)
measured(cluster, "full", [[str(VAXVAULT), "backup", "run", "--full"]], env=env)
lost = lost_count(n)
last_id = int(str(admin(url, f"SELECT id FROM doses WHERE dose_number = 1 ORDER BY id OFFSET {lost - 1} LIMIT 1")))
where = f"dose_number = 1 AND id <= {last_id}"
time.sleep(1.0)
as_of = datetime.now(UTC).isoformat(timespec="seconds")
time.sleep(1.5)
admin(url, f"UPDATE doses SET administered_on = NULL WHERE {where}")
(W / f"incident-{n}.txt").write_text(f"{as_of}\n{where}\n")
measured(cluster, "incremental", [[str(VAXVAULT), "backup", "run", "--incremental"]], env=env)
admin(url, "CHECKPOINT")
shutil.rmtree(spool, ignore_errors=True)
print("ready", as_of, where)
