"""Client CPU per stage of one chunk's path, on real COPY text of the 1M bench (doses):
compress, sha256, spool write (fsync), hashed copy to the primary vs a hard link + re-hash.
    PYTHONPATH=. .venv/bin/python bench/lab/stop19-snapshot2/client_cost.py DBNAME"""
import asyncio, sys, os, time, hashlib, shutil, resource
from pathlib import Path
import asyncpg, zstandard
from bench.cluster import start_cluster
from backup.storage.file import FileRepository

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime

async def fetch(url):
    conn = await asyncpg.connect(url)
    parts = []
    async def sink(d): parts.append(d)
    await conn.copy_from_query("SELECT * FROM doses WHERE ctid < '(1500,0)'::tid", output=sink)
    await conn.close()
    return b"".join(parts)

c = start_cluster()
raw = asyncio.run(fetch(c.url(sys.argv[1])))
work = Path("/tmp/snapshot2-client"); shutil.rmtree(work, ignore_errors=True)
spool = FileRepository(work / "spool"); primary = FileRepository(work / "primary")
N = 8
t = {}
def timed(label, fn):
    c0 = cpu(); w0 = time.perf_counter(); r = fn(); t[label] = t.get(label, (0, 0))
    t[label] = (t[label][0] + cpu() - c0, t[label][1] + time.perf_counter() - w0); return r
for i in range(N):
    key = f"snapshots/20261201T000000000000Z/tables/doses/{i:06d}.copy.zst"
    data = timed("zstd-3 one shot", lambda: zstandard.ZstdCompressor(level=3).compress(raw))
    digest = timed("sha256", lambda: hashlib.sha256(data).hexdigest())
    timed("spool put (write+fsync)", lambda: spool.put(key, data))
    timed("hashed copy to primary", lambda: primary.put_file_hashed(key, spool.root / key))
    key2 = key.replace("doses", "doses2")
    def link():
        target = primary.root / key2
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(spool.root / key, target)
        h = hashlib.sha256()
        with open(target, "rb") as f:
            while p := f.read(4 << 20): h.update(p)
        fd = os.open(target.parent, os.O_RDONLY); os.fsync(fd); os.close(fd)
        return h.hexdigest()
    timed("link + re-hash + dir fsync", link)
print(f"raw {len(raw)/1e6:.1f} MB -> {len(data)/1e6:.1f} MB; per chunk (cpu, wall) ms:")
for k, (cc, w) in t.items():
    print(f"  {k:30s} cpu {cc/N*1000:7.1f}  wall {w/N*1000:7.1f}")
shutil.rmtree(work)
