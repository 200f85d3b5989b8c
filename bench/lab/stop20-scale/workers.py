"""`backup run --full --workers W` at 1M for several W, alternating, on fullcmp.py's scratch database:
wall, client CPU, backend CPU.  PYTHONPATH=. .venv/bin/python bench/lab/stop20-scale/workers.py 3 2,3"""
import os, shutil, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent.parent / "stop19-snapshot2"))
from cpu import server_cpu
from bench import snapshot
from bench.cluster import start_cluster
from bench.server import VAXVAULT

rounds = int(sys.argv[1]); counts = sys.argv[2].split(",")
cluster = start_cluster()
repo = snapshot.WORK / "repo-w"; spool = snapshot.WORK / "spool-w"
env = {**os.environ, "VAXVAULT_DATABASE_URL": cluster.url("bench_scratch_backup_snap1000000"),
       "VAXVAULT_BACKUP_URL": repo.as_uri(), "VAXVAULT_BACKUP_SPOOL_DIR": str(spool)}
subprocess.run([str(VAXVAULT), "backup", "init"], check=True, env=env, capture_output=True)
for r in range(rounds):
    for w in (counts if r % 2 == 0 else counts[::-1]):
        shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
        load = os.getloadavg()[0]; s0 = server_cpu(cluster.data_dir); t0 = time.perf_counter()
        p = subprocess.Popen([str(VAXVAULT), "backup", "run", "--full", "--workers", w], env=env,
                             stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0; s = server_cpu(cluster.data_dir) - s0; c = usage.ru_utime + usage.ru_stime
        print(f"round {r} workers {w} wall {wall:6.2f} s cpu client {c:5.2f} server {s:5.2f} total {c + s:5.2f} "
              f"rc {status} load {load:.1f}", flush=True)
shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
