"""Audit INSERT latency with the GIN on recipient_ids in fastupdate on / off / small pending
list: scratch copies of audit_log, batches of 6 rows of 100 recipient ids (a page of 100's
audit row), alternating blocks; prints p50/p99/max per INSERT and backend CPU per row:
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-compiled3/gin_tail.py URL [BATCHES]"""
import asyncio, os, random, statistics, sys, time
import asyncpg

TICK = os.sysconf("SC_CLK_TCK")
SETUPS = {"fastupdate on (4MB)": "fastupdate = on",
          "fastupdate off": "fastupdate = off",
          "pending list 1MB": "fastupdate = on, gin_pending_list_limit = 1024",
          "pending list 256kB": "fastupdate = on, gin_pending_list_limit = 256"}


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


async def main():
    url = sys.argv[1]
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    conns = {}
    for i, (name, opts) in enumerate(SETUPS.items()):
        c = await asyncpg.connect(url)
        t = f"gin_tail_{i}"
        await c.execute(f"DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (LIKE audit_log INCLUDING DEFAULTS INCLUDING IDENTITY); "
                        f"INSERT INTO {t} OVERRIDING SYSTEM VALUE SELECT * FROM audit_log; "
                        f"CREATE INDEX ON {t} USING gin (recipient_ids) WITH ({opts}); CREATE INDEX ON {t} (at)")
        conns[name] = (c, t, await c.fetchval("SELECT pg_backend_pid()"), [], [0.0])
    rng = random.Random(1)
    cols = "actor_sub, actor_role, action, operation, request_id, recipient_ids, fields, detail"
    for b in range(batches // 50):
        for name, (c, t, pid, lat, spent) in conns.items():
            c0 = cpu(pid)
            for _ in range(50):
                start = rng.randrange(1, 999_000)
                rows = [("bench-admin", "admin", "read", "RecipientsPage", "x",
                         list(range(start, start + 100)), ["fullName", "nationalId"], "{}")] * 6
                t0 = time.perf_counter()
                await c.executemany(f"INSERT INTO {t} ({cols}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8::jsonb)", rows) if False else \
                    await c.execute(f"INSERT INTO {t} ({cols}) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) "
                                    f"CROSS JOIN (SELECT $6::bigint[], $7::text[], '{{}}'::jsonb) x",
                                    [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                                    [r[3] for r in rows], [r[4] for r in rows], rows[0][5], rows[0][6])
                lat.append(time.perf_counter() - t0)
            spent[0] += cpu(pid) - c0
    for name, (c, t, pid, lat, spent) in conns.items():
        q = statistics.quantiles(lat, n=100)
        print(f"{name}: p50 {1000*q[49]:.2f} ms, p99 {1000*q[98]:.2f}, max {1000*max(lat):.1f}, "
              f"over 50 ms {sum(x > 0.05 for x in lat)}, over 100 ms {sum(x > 0.1 for x in lat)}, CPU {1000*spent[0]/(len(lat)*6):.3f} ms/row (n={len(lat)} INSERTs of 6, load {os.getloadavg()[0]:.1f})")
        await c.execute(f"DROP TABLE {t}")
        await c.close()

asyncio.run(main())
