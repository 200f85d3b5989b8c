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
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 0
W = CACHE / "rs"
cluster = start_cluster()


def once(code, name, repo):
    """One incremental of the damage with `code` (PYTHONPATH; '' = this checkout) on a throwaway clone."""
    spool = W / "spool-x"
    shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
    shutil.copytree(W / f"repo-{n}.full", repo)
    url = clone_database(cluster, f"rs_damaged_{n}", name)
    admin(url, "CHECKPOINT")
    env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(),
           "VAXVAULT_BACKUP_SPOOL_DIR": str(spool), "PYTHONPATH": code}
    measured(cluster, "main incr" if code else "branch incr", [[str(VAXVAULT), "backup", "run", "--incremental"]], env=env)
    print("   bytes", sum(p.stat().st_size for p in (repo / "segments").rglob("*") if p.is_file()))
    drop_database(cluster, name); shutil.rmtree(repo); shutil.rmtree(spool, ignore_errors=True)


if rounds:  # `ship.py N ROUNDS`: alternate main's code and this checkout's, keep nothing
    for r in range(rounds):
        for code in (["", str(W / "main-code")] if r % 2 == 0 else [str(W / "main-code"), ""]):
            once(code, "rs_ship_x", W / "repo-x")
    sys.exit(0)
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
