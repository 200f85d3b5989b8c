"""Alternate main's code and this branch's on the incremental trial; print wall and phases."""
import os, shutil, sys, json, subprocess, time
from bench.cluster import CACHE, admin, clone_database, start_cluster, drop_database
from bench.process import run_pipeline
from bench.server import VAXVAULT
n = int(sys.argv[1]); rounds = int(sys.argv[2]); sides = sys.argv[3].split(",")
W = CACHE / "ship"
cluster = start_cluster()
TICK = os.sysconf("SC_CLK_TCK")
PM = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
def _stat(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return f
def server_cpu():
    f = _stat(PM)
    total = (int(f[13]) + int(f[14])) / TICK  # reaped children
    for child in open(f"/proc/{PM}/task/{PM}/children").read().split():
        try:
            g = _stat(child); total += (int(g[11]) + int(g[12])) / TICK
        except OSError:
            pass
    return total
codes = {"main": str(W / "main-code"), "branch": ""}
PREFIX = os.environ.get("PREFIX", "").split()
for r in range(rounds):
    order = sides if r % 2 == 0 else sides[::-1]
    for side in order:
        repo, spool = W / f"ab-repo", W / f"ab-spool"
        shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
        shutil.copytree(W / (f"repo-{n}.base" if side == "main" else f"repo_json-{n}.base"), repo)
        url = clone_database(cluster, f"ship_damaged_{n}" if side == "main" else f"ship_damaged_json_{n}", f"ship_ab")
        env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(),
               "VAXVAULT_BACKUP_SPOOL_DIR": str(spool), "PYTHONPATH": codes[side]}
        out = W / "ab.out"
        load = os.getloadavg()[0]
        c0 = server_cpu(); r0 = os.times()
        m = run_pipeline([[*PREFIX, str(VAXVAULT), "backup", "run", "--incremental", "--json"]], out, env=env)
        r1 = os.times(); c1 = server_cpu()
        client = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
        j = json.loads(out.read_text())
        print(f"round {r} {side:7s} wall {m.seconds:6.2f} s in-run {j['seconds']:6.2f} phases {j['phases']} "
              f"cpu client {client:.2f} server {c1 - c0:.2f} rss {m.peak_rss_mib} MiB bytes {j['bytes']} load {load:.1f}", flush=True)
drop_database(cluster, "ship_ab")
