"""Cut the incident's incremental with the checked-out code: rs_shipped_N (template for trial.py)
and CACHE/rs/repo-N.base from rs_damaged_N and repo-N.full (prep.py). Prints the run's CPU.
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-restore2/ship.py 1000000"""
import shutil, sys
from bench.cluster import CACHE, admin, clone_database, start_cluster, drop_database
from bench.process import run_pipeline
from bench.server import VAXVAULT
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from cpu import measured

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
W = CACHE / "rs"
cluster = start_cluster()
repo, spool = W / f"repo-{n}.base", W / f"spool-{n}"
shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
shutil.copytree(W / f"repo-{n}.full", repo)
shipped = f"rs_shipped_{n}"
url = clone_database(cluster, f"rs_damaged_{n}", shipped)
admin(url, "CHECKPOINT")
env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(), "VAXVAULT_BACKUP_SPOOL_DIR": str(spool)}
measured(cluster, "incremental", [[str(VAXVAULT), "backup", "run", "--incremental"]], env=env)
shutil.rmtree(spool, ignore_errors=True)
print("segments:", sorted(p.relative_to(repo).as_posix() for p in (repo / "segments").rglob("*") if p.is_file()))
