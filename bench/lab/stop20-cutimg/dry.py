"""Does the image's new text cost the restore anything? Cut the incident's segment with main's code
and with this checkout's (each into its own repository and database), then alternate this
checkout's dry run (`restore records --dry-run`) on both: CPU client + server.
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-cutimg/dry.py 1000000 R"""
import shutil, sys
from pathlib import Path
from bench.cluster import CACHE, admin, clone_database, start_cluster, drop_database
from bench.process import run_pipeline
from bench.server import VAXVAULT
sys.path.insert(0, str(Path(__file__).parents[1] / "stop19-restore2"))
from cpu import measured

n = int(sys.argv[1]); rounds = int(sys.argv[2])
W = CACHE / "rs"
as_of, where = (W / f"incident-{n}.txt").read_text().split("\n")[:2]
cluster = start_cluster()
sides = {"branch": "", "main": str(W / "main-code")}
for side, code in sides.items():
    repo = W / f"dry-repo-{side}"
    shutil.rmtree(repo, ignore_errors=True); shutil.copytree(W / f"repo-{n}.full", repo)
    url = clone_database(cluster, f"rs_damaged_{n}", f"rs_dry_{side}")
    run_pipeline([[str(VAXVAULT), "backup", "run", "--incremental"]],
                 env={"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(),
                      "VAXVAULT_BACKUP_SPOOL_DIR": str(W / "dry-spool"), "PYTHONPATH": code})
for r in range(rounds):
    for side in (["branch", "main"] if r % 2 == 0 else ["main", "branch"]):
        url = clone_database(cluster, f"rs_dry_{side}", "rs_dry_x")
        admin(url, "CHECKPOINT")
        env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": (W / f"dry-repo-{side}").as_uri(),
               "VAXVAULT_BACKUP_SPOOL_DIR": str(W / "dry-spool")}
        measured(cluster, f"dry on {side}'s segment", [[str(VAXVAULT), "restore", "records", "--as-of", as_of,
                 "--table", "doses", "--where", where, "--dry-run", "--json"]], W / "dry.json", env=env)
        drop_database(cluster, "rs_dry_x")
for side in sides:
    drop_database(cluster, f"rs_dry_{side}"); shutil.rmtree(W / f"dry-repo-{side}")
