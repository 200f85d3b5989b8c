"""The restore's write-back alone at N: on a clone of rs_shipped_N (prep.py), src = the incident's
rows as in bench_N (copied over), then `UPDATE doses l SET <all> FROM src s WHERE l.id = s.id`
(the restore's statement shape, every trigger on), rolled back, VACUUM + CHECKPOINT between
variants; backend CPU, wall, WAL bytes, checkpoints, buffers written by backends.
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-scale/upd.py 10000000 1 [variant ...]"""
import asyncio, os, sys
import asyncpg
from bench.cluster import CACHE, clone_database, start_cluster, drop_database

n = int(sys.argv[1]); rounds = int(sys.argv[2]); only = sys.argv[3:]
W = CACHE / "rs"
as_of, where = (W / f"incident-{n}.txt").read_text().split("\n")[:2]
cluster = start_cluster()
TICK = os.sysconf("SC_CLK_TCK")
COLS = ("recipient_id", "dose_number", "vaccine_code", "lot_number", "administered_on", "center_id",
        "next_due_on", "recorded_by", "created_at", "updated_at")
SETS = ", ".join(f"{c} = s.{c}" for c in COLS)
UPDATE = f"UPDATE doses l SET {SETS} FROM src s WHERE l.id = s.id"
ORDERED = (f"UPDATE doses l SET {SETS} FROM (SELECT * FROM src ORDER BY center_id, administered_on DESC, id DESC) s "
           f"WHERE l.id = s.id")
STATS = ("SELECT pg_current_wal_insert_lsn(), checkpoints_timed + checkpoints_req, buffers_backend, "
         "buffers_checkpoint, buffers_clean FROM pg_stat_bgwriter")


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


async def prepare(url):
    src = await asyncpg.connect(cluster.url(f"bench_{n}"))
    conn = await asyncpg.connect(url)
    await conn.execute("DROP TABLE IF EXISTS src")
    await conn.execute("CREATE TABLE src (LIKE doses)")
    data = bytearray()
    async def sink(b): data.extend(b)
    await src.copy_from_query(f"SELECT * FROM doses WHERE {where}", output=sink)
    import io
    await conn.copy_to_table("src", source=io.BytesIO(bytes(data)))
    await conn.execute("ALTER TABLE src ADD PRIMARY KEY (id)")
    await conn.execute("VACUUM ANALYZE src")
    got = await conn.fetchval("SELECT count(*) FROM src")
    await src.close(); await conn.close()
    return got


async def variant(url, name, settings, statement=UPDATE):
    conn = await asyncpg.connect(url)
    await conn.execute("VACUUM doses"); await conn.execute("CHECKPOINT")
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    load = os.getloadavg()[0]
    tr = conn.transaction(); await tr.start()
    for s in settings:
        await conn.execute(s)
    s0 = await conn.fetchrow(STATS)
    watcher = await asyncpg.connect(url)
    waits = {}
    io0 = open(f"/proc/{pid}/io").read()
    async def sample():
        while True:
            w = await watcher.fetchval("SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') "
                                       "FROM pg_stat_activity WHERE pid = $1", pid)
            waits[w] = waits.get(w, 0) + 1
            await asyncio.sleep(0.05)
    c0 = cpu(pid); loop = asyncio.get_running_loop(); t0 = loop.time()
    sampler = asyncio.ensure_future(sample())
    status = await conn.execute(statement)
    t1 = loop.time(); c1 = cpu(pid)
    sampler.cancel()
    try:
        await sampler
    except asyncio.CancelledError:
        pass
    await watcher.close()
    io1 = open(f"/proc/{pid}/io").read()
    wb = lambda t: int([l for l in t.splitlines() if l.startswith("write_bytes")][0].split()[1])
    total = sum(waits.values())
    print("   waits", {k: round(v / total, 2) for k, v in sorted(waits.items(), key=lambda kv: -kv[1])},
          f"backend write_bytes {(wb(io1) - wb(io0)) / 2**20:.0f} MiB")
    s1 = await conn.fetchrow(STATS)
    wal = await conn.fetchval("SELECT pg_wal_lsn_diff($1, $2)", s1[0], s0[0])
    await tr.rollback(); await conn.close()
    print(f"{n:>8} {name:26s} {status:13s} backend CPU {c1 - c0:6.2f} s wall {t1 - t0:6.2f} s "
          f"WAL {wal / 2**20:7.1f} MiB ckpt {s1[1] - s0[1]} buf_backend {s1[2] - s0[2]} "
          f"buf_ckpt {s1[3] - s0[3]} buf_clean {s1[4] - s0[4]} load {load:.1f}", flush=True)


BASE = ["SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off"]
VARIANTS = {
    "merge (restore's)": (BASE, UPDATE),
    "no trigger": (BASE + ["SET LOCAL session_replication_role = replica"], UPDATE),
    "wal lz4": (BASE + ["SET LOCAL wal_compression = lz4"], UPDATE),
    "wal zstd": (BASE + ["SET LOCAL wal_compression = zstd"], UPDATE),
    "wal pglz": (BASE + ["SET LOCAL wal_compression = pglz"], UPDATE),
    "ordered by center_idx": (BASE + ["SET LOCAL enable_hashjoin = off", "SET LOCAL enable_mergejoin = off"], ORDERED),
}


async def main(url):
    print("rows", await prepare(url))
    names = [v for v in VARIANTS if not only or v in only]
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            await variant(url, name, *VARIANTS[name])


asyncio.run(main(clone_database(cluster, f"rs_shipped_{n}", "rs_upd")))
drop_database(cluster, "rs_upd")
