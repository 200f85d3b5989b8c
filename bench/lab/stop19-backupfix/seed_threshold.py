"""Seed N recipients in-process vs with the child generator, alternating; wall and CPU seconds
(this process + children + the backend). Usage: PYTHONPATH=. python seed_threshold.py 20000,40000,60000 3"""
import asyncio, os, resource, sys, tempfile, time
from pathlib import Path

import asyncpg

from api.db.seed import seed
from tests import harness


def _backend_cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


async def one(url: str, n: int, background: bool) -> tuple[float, float]:
    conn = await asyncpg.connect(url)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        b0, c0, t0 = _backend_cpu(pid), _own_cpu(), time.perf_counter()
        await seed(conn, n, replace=True, background=background)
        return time.perf_counter() - t0, _own_cpu() - c0 + _backend_cpu(pid) - b0
    finally:
        await conn.close()


def main() -> None:
    sizes = [int(x) for x in sys.argv[1].split(",")]
    rounds = int(sys.argv[2])
    with tempfile.TemporaryDirectory(prefix="vv-seedthr-") as root, harness.postgres_server(Path(root)) as server:
        template = harness.create_template(server, "thr", 0)
        url = harness.create_database(server, "thr_db", template=template)
        for n in sizes:
            results = {False: [], True: []}
            for _ in range(rounds):
                for background in (False, True):
                    results[background].append(asyncio.run(one(url, n, background)))
            for background, rows in results.items():
                walls = sorted(r[0] for r in rows)
                cpus = sorted(r[1] for r in rows)
                print(f"{n:>7} {'child' if background else 'in-process':>10} wall median {walls[len(walls)//2]:.2f} s"
                      f"  cpu median {cpus[len(cpus)//2]:.2f} s", flush=True)


main()
