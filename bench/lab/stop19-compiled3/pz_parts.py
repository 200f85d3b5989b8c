"""Backend CPU of the principal part (_BEGIN_SQL) alone and of variants, one connection, API role:
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-compiled3/pz_parts.py URL ROUNDS"""
import asyncio, os, sys
import asyncpg
from api.db.session import _BEGIN_SQL

TICK = os.sysconf("SC_CLK_TCK")
ARGS = ("center_staff", "staff-7", "7", "")
V = {
    "begin": _BEGIN_SQL,
    "set_config only": "SELECT set_config('vaxvault.role', $1, true), set_config('vaxvault.sub', $2, true), set_config('vaxvault.center_id', $3, true), set_config('vaxvault.district_id', $4, true)",
    "select 1": "SELECT $1::text, $2::text, $3::text, $4::text",
    "freezes only": "SELECT $1::text, $2::text, $3::text, $4::text, (SELECT coalesce(string_agg(DISTINCT district_id::text, ','), '') FROM privacy_freezes WHERE lifted_at IS NULL AND until > now() AND district_id IS NOT NULL), (SELECT count(*) FROM privacy_freezes WHERE lifted_at IS NULL AND until > now())",
}


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


async def main():
    url, rounds = sys.argv[1], int(sys.argv[2])
    c = await asyncpg.connect(url, server_settings={"role": "vaxvault_api"})
    pid = await c.fetchval("SELECT pg_backend_pid()")
    spent = dict.fromkeys(V, 0.0)
    for r in range(rounds + 1):
        for k, sql in (V.items() if r % 2 else list(V.items())[::-1]):
            c0 = cpu(pid)
            for _ in range(200):
                await c.fetchrow(sql, *ARGS)
            if r:
                spent[k] += cpu(pid) - c0
    for k, v in spent.items():
        print(f"{k}: {1000 * v / (rounds * 200):.3f} ms/exec (load {os.getloadavg()[0]:.1f})")

asyncio.run(main())
