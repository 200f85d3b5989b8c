"""Alternate `vaxvault restore records` (dry run, then the restore) on a fresh clone of the shipped
incident (ship.py), main's code on the same clone, and pg_restore of the full dump into a scratch DB;
print wall, CPU (client = the command, server = the backends), peak RSS, load.
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-restore2/trial.py 1000000 3 [--no-peer] [--main]
--main: main's code from CACHE/rs/main-code (`git archive main api backup | tar -x -C ...`)."""
import json, os, shutil, sys
from pathlib import Path
from bench.cluster import CACHE, admin, clone_database, start_cluster, drop_database
from bench.server import VAXVAULT
sys.path.insert(0, str(Path(__file__).parent))
from cpu import measured

n = int(sys.argv[1]); rounds = int(sys.argv[2]); peer = "--no-peer" not in sys.argv
W = CACHE / "rs"
as_of, where = (W / f"incident-{n}.txt").read_text().split("\n")[:2]
cluster = start_cluster()
PREFIX = os.environ.get("PREFIX", "").split()
EXTRA = [a for a in sys.argv[3:] if a.startswith("--restore-")]


def ours(code=""):
    repo, spool = W / "trial-repo", W / "trial-spool"
    shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
    shutil.copytree(W / f"repo-{n}.base", repo)
    url = clone_database(cluster, f"rs_shipped_{n}", "rs_trial")
    admin(url, "CHECKPOINT")
    env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(),
           "VAXVAULT_BACKUP_SPOOL_DIR": str(spool), "PYTHONPATH": code}
    side = "main" if code else "branch"
    base = [*PREFIX, str(VAXVAULT), "restore", "records", "--as-of", as_of, "--table", "doses",
            "--where", where, "--json"]
    out = W / "trial.json"
    measured(cluster, f"{side} dry", [[*base, "--dry-run"]], out, env)
    dry = json.loads(out.read_text())
    if "--dry-only" in sys.argv:
        drop_database(cluster, "rs_trial")
        return
    measured(cluster, f"{side} rest", [base], out, env)
    real = json.loads(out.read_text())
    left = admin(url, f"SELECT count(*) FROM doses WHERE {where} AND administered_on IS NULL")
    print(f"          restored {real['restored']} counts {real['plan']['counts']} chunks "
          f"{real['plan']['chunks_read']}/{real['plan']['chunks_total']} timings {real.get('timings')} "
          f"dry timings {dry.get('timings')} still NULL {left}", flush=True)
    drop_database(cluster, "rs_trial")


def theirs():
    admin(cluster.url(), 'DROP DATABASE IF EXISTS "rs_peer" WITH (FORCE)', 'CREATE DATABASE "rs_peer"')
    measured(cluster, "pg_restore", [[*PREFIX, "pg_restore", "--no-owner", "-d", cluster.url("rs_peer"),
                                      str(W / f"bench_{n}.dump")]])
    drop_database(cluster, "rs_peer")


def main_code():
    ours(str(W / "main-code"))


for r in range(rounds):
    sides = [ours, theirs] if peer else [ours]
    if "--main" in sys.argv:
        sides.insert(1, main_code)
    for side in (sides if r % 2 == 0 else sides[::-1]):
        side()
