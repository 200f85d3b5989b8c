"""Alternate `vaxvault restore records` (dry run, then the restore) on a fresh clone of the
shipped incident and pg_restore of the full dump into a scratch DB; print wall, CPU (client =
the command's children, server = postmaster's reaped + live children), peak RSS, load.
  PYTHONPATH=. .venv/bin/python /work/notes/restorespeed-scripts/trial.py 1000000 3 [--no-peer] [--main]
--main: also main's code (from CACHE/rs/main-code, see main_code) on the same clone each round.
Needs prep.py first. PREFIX env (e.g. "nice -n 0") is put before each command."""
import json, os, shutil, sys
from bench.cluster import CACHE, admin, clone_database, start_cluster, drop_database
from bench.process import run_pipeline
from bench.server import VAXVAULT

n = int(sys.argv[1]); rounds = int(sys.argv[2]); peer = "--no-peer" not in sys.argv
W = CACHE / "rs"
as_of, where = (W / f"incident-{n}.txt").read_text().split("\n")[:2]
cluster = start_cluster()
TICK = os.sysconf("SC_CLK_TCK")
PM = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
PREFIX = os.environ.get("PREFIX", "").split()

def _stat(pid):
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()

def server_cpu():
    f = _stat(PM); total = (int(f[13]) + int(f[14])) / TICK
    for child in open(f"/proc/{PM}/task/{PM}/children").read().split():
        try:
            g = _stat(child); total += (int(g[11]) + int(g[12])) / TICK
        except OSError:
            pass
    return total

def measured(label, commands, out=None, env=None):
    load = os.getloadavg()[0]
    c0 = server_cpu(); r0 = os.times()
    m = run_pipeline(commands, out, env=env) if out else run_pipeline(commands, env=env)
    r1 = os.times(); c1 = server_cpu()
    client = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    print(f"{label:9s} wall {m.seconds:6.2f} s cpu client {client:5.2f} server {c1 - c0:5.2f} "
          f"rss {m.peak_rss_mib} MiB load {load:.1f}", flush=True)
    return m

def ours(code=""):
    repo, spool = W / "trial-repo", W / "trial-spool"
    shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
    shutil.copytree(W / f"repo-{n}.base", repo)
    url = clone_database(cluster, f"rs_shipped_{n}", "rs_trial")
    admin(url, "CHECKPOINT")
    env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(),
           "VAXVAULT_BACKUP_SPOOL_DIR": str(spool), "PYTHONPATH": code}
    print(f"-- {'main' if code else 'branch'}", flush=True)
    base = [*PREFIX, str(VAXVAULT), "restore", "records", "--as-of", as_of, "--table", "doses",
            "--where", where, "--json"]
    out = W / "trial.json"
    measured("dry run", [[*base, "--dry-run"]], out, env)
    dry = json.loads(out.read_text())
    measured("restore", [base], out, env)
    real = json.loads(out.read_text())
    left = admin(url, f"SELECT count(*) FROM doses WHERE {where} AND administered_on IS NULL")
    print(f"          restored {real['restored']} counts {real['plan']['counts']} chunks "
          f"{real['plan']['chunks_read']}/{real['plan']['chunks_total']} timings {real.get('timings')} "
          f"dry timings {dry.get('timings')} still NULL {left}", flush=True)
    drop_database(cluster, "rs_trial")

def theirs():
    admin(cluster.url(), 'DROP DATABASE IF EXISTS "rs_peer" WITH (FORCE)', 'CREATE DATABASE "rs_peer"')
    measured("pg_restore", [[*PREFIX, "pg_restore", "--no-owner", "-d", cluster.url("rs_peer"),
                             str(W / f"bench_{n}.dump")]])
    drop_database(cluster, "rs_peer")

def main_code():
    ours(str(W / "main-code"))  # `git archive main api backup | tar -x -C CACHE/rs/main-code`

for r in range(rounds):
    sides = [ours, theirs] if peer else [ours]
    if "--main" in sys.argv:
        sides.insert(1, main_code)
    for side in (sides if r % 2 == 0 else sides[::-1]):
        side()
