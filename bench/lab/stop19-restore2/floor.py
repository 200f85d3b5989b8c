"""The write-back's floor: the restore's UPDATE of the incident's rows (the same statement shape:
UPDATE doses l SET <every column> = s.<column> FROM src s WHERE l.id = s.id) on a clone of the shipped
incident, rolled back, with all triggers (capture + doses_touch), with jit off, without capture,
and with no trigger at all (session_replication_role = replica), each after VACUUM; backend CPU
from /proc. Needs rs_damaged_N (prep.py): its live log holds the damage, whose old images are the rows at T.
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-restore2/floor.py 1000000 2"""
import asyncio, os, sys
import asyncpg
from bench.cluster import CACHE, admin, clone_database, start_cluster

n = int(sys.argv[1]); rounds = int(sys.argv[2])
W = CACHE / "rs"
as_of, where = (W / f"incident-{n}.txt").read_text().split("\n")[:2]
cluster = start_cluster()
TICK = os.sysconf("SC_CLK_TCK")
url = clone_database(cluster, f"rs_damaged_{n}", "rs_floor")
COLS = ("recipient_id", "dose_number", "vaccine_code", "lot_number", "administered_on", "center_id",
        "next_due_on", "recorded_by", "created_at", "updated_at")
SETS = ", ".join(f"{c} = s.{c}" for c in COLS)
UPDATE = f"UPDATE doses l SET {SETS} FROM src s WHERE l.id = s.id"


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


async def prepare():
    conn = await asyncpg.connect(url)
    # the rows as at T: the damage's old images in the change log of the damaged template
    await conn.execute("DROP TABLE IF EXISTS src")
    await conn.execute("CREATE TABLE src AS SELECT r.* FROM vaxvault_backup.changes c, "
                       "json_populate_record(NULL::doses, c.old) r WHERE c.table_name = 'doses' AND c.op = 'U'")
    got = await conn.fetchval("SELECT count(*) FROM src")
    if not got:
        raise SystemExit("no damage in the live log of rs_damaged")
    await conn.execute("ALTER TABLE src ADD PRIMARY KEY (id)")
    await conn.execute("VACUUM ANALYZE src"); await conn.execute("VACUUM ANALYZE doses")
    await conn.close()
    return got


async def variant(name, settings):
    conn = await asyncpg.connect(url)
    await conn.execute("VACUUM doses"); await conn.execute("CHECKPOINT")
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    load = os.getloadavg()[0]
    tr = conn.transaction(); await tr.start()
    for s in settings:
        await conn.execute(s)
    c0 = cpu(pid); loop = asyncio.get_running_loop(); t0 = loop.time()
    status = await conn.execute(UPDATE)
    t1 = loop.time(); c1 = cpu(pid)
    await tr.rollback(); await conn.close()
    print(f"{name:28s} {status:14s} backend CPU {c1 - c0:6.2f} s wall {t1 - t0:6.2f} s load {load:.1f}", flush=True)


VARIANTS = [
    ("all triggers", ["SET LOCAL work_mem = '64MB'", "SET LOCAL temp_buffers = '256MB'"]),
    ("all triggers, jit off", ["SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off"]),
    ("no capture (touch only)", ["SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off",
                                 "ALTER TABLE doses DISABLE TRIGGER vaxvault_capture_update"]),
    ("no trigger (floor)", ["SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off",
                            "SET LOCAL session_replication_role = replica"]),
]


async def main():
    print("rows", await prepare())
    for r in range(rounds):
        for name, settings in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]):
            await variant(name, settings)

asyncio.run(main())
admin(cluster.url(), 'DROP DATABASE IF EXISTS "rs_floor" WITH (FORCE)')
