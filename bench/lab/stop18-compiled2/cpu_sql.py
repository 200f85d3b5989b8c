"""Backend CPU (utime+stime from /proc) per execution of SQL files, as the API role, blocks of
25 executions alternating between the files; each execution is its own (committed) statement
unless --rollback. Prepared (generic after 5) unless --simple.

  PYTHONPATH=. .venv/bin/python cpu_sql.py URL ROUNDS FILE... [--rollback] [--simple]
"""
import asyncio
import os
import sys

import asyncpg

TICK = os.sysconf("SC_CLK_TCK")
BLOCK = 25


def cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def main() -> None:
    url, rounds = sys.argv[1], int(sys.argv[2])
    files = [a for a in sys.argv[3:] if not a.startswith("--")]
    rollback, simple = "--rollback" in sys.argv, "--simple" in sys.argv
    conn = await asyncpg.connect(url, server_settings={} if "--owner" in sys.argv else {"role": "vaxvault_api"})
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    texts = [open(f).read().rstrip().rstrip(";") for f in files]
    spent = [0.0] * len(files)
    for r in range(rounds + 1):
        for i, text in enumerate(texts):
            c0 = cpu(pid)
            for _ in range(BLOCK):
                if rollback:
                    await conn.execute("BEGIN")
                if simple:
                    await conn.execute(text)
                else:
                    await conn.fetch(text)
                if rollback:
                    await conn.execute("ROLLBACK")
            if r:  # the first round warms up
                spent[i] += cpu(pid) - c0
    for f, s in zip(files, spent):
        print(f"{f}: {1000 * s / (rounds * BLOCK):.3f} ms backend CPU/exec "
              f"(n={rounds * BLOCK}, load {os.getloadavg()[0]:.2f})")
    await conn.close()

asyncio.run(main())
