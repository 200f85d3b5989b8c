"""One full run in-process on the scratch clone; prints phases and CPU seconds per thread name.
    PYTHONPATH=. .venv/bin/python bench/lab/stop19-snapshot2/inproc.py [workers] [chunk_rows]"""
import threading, asyncio, os, sys, shutil, time, collections, resource
from pathlib import Path
from bench import snapshot
from bench.cluster import start_cluster
from backup.config import BackupConfig
from backup.runner import run_backup
sys.path.insert(0, os.path.dirname(__file__))
from cpu import server_cpu
TICK = os.sysconf("SC_CLK_TCK")
workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
chunk_rows = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
c = start_cluster()
label = "snap1000000"
repo = snapshot.WORK / f"repo-{label}"; spool = snapshot.WORK / f"spool-{label}"
shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
cfg = BackupConfig(database_url=c.url(f"bench_scratch_backup_{label}"), spool_dir=spool, primary_url=repo.as_uri(),
                   workers=workers, chunk_rows=chunk_rows)
per = collections.Counter()
seen = {}
def sample():
    for tid in os.listdir("/proc/self/task"):
        try:
            names = {str(th.native_id): th.name for th in threading.enumerate()}
            name = seen.get(tid, (names.get(tid, "?"),))[0] if tid not in names else names[tid]
            name = name.rsplit("_", 1)[0] if name.startswith("asyncio_") or name.startswith("ThreadPool") else name
            raw = open(f"/proc/self/task/{tid}/stat").read(); f = raw[raw.rindex(")") + 2:].split()
            seen[tid] = (name, (int(f[11]) + int(f[12])) / TICK)
        except FileNotFoundError:
            pass
stop = False
def poll():
    while not stop:
        sample(); time.sleep(0.05)
t = threading.Thread(target=poll, name="poller", daemon=True); t.start()
r0 = resource.getrusage(resource.RUSAGE_SELF)
s0 = server_cpu(c.data_dir)
w0 = time.perf_counter()
summary = asyncio.run(run_backup(cfg, full=True))
w = time.perf_counter() - w0
stop = True; t.join(); sample()
s1 = server_cpu(c.data_dir)
r1 = resource.getrusage(resource.RUSAGE_SELF)
for name, cpu in seen.values(): per[name] += cpu
print(f"wall {w:.2f}  phases {summary.phases}  process cpu {r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime:.2f} (user {r1.ru_utime - r0.ru_utime:.2f})  load {os.getloadavg()[0]:.1f} server cpu {s1 - s0:.2f}")
for name, cpu in per.most_common(): print(f"   {cpu:6.2f} {name}")
