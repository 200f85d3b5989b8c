"""Compiled reads in-process (no HTTP): C concurrent tasks on one pool of 10, latency
percentiles per block, alternating two AuditCommits implementations (files) in one process:
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-compiled3/latency.py URL QUERY A.py B.py [ROUNDS] [C]"""
import asyncio
import importlib.util
import os
import random
import statistics
import sys
import time

import asyncpg

import api.compiled.compiler as compiler_module
from api.compiled.compiler import Compiler
from api.db.pool import create_pool
from api.principal import Principal, Role
from api.schema import build_schema
from api.settings import Settings
from bench.portal import OURS


def load(path: str):
    spec = importlib.util.spec_from_file_location(f"ac_{abs(hash(path))}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    base = mod.Reader

    class Timed(base):  # records how long the flusher waited for a pool connection
        async def __aenter__(self):
            t = time.perf_counter()
            out = await super().__aenter__()
            WAITS.setdefault(path, []).append(time.perf_counter() - t)
            return out
    mod.Reader = Timed
    return mod.AuditCommits


WAITS: dict[str, list[float]] = {}


async def main() -> None:
    url, query, a, b = sys.argv[1:5]
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    clients = int(sys.argv[6]) if len(sys.argv) > 6 else 16
    impl = {a: load(a), b: load(b)}
    owner = await asyncpg.connect(url)
    pairs = [tuple(r) for r in await owner.fetch(
        "SELECT id, center_id FROM recipients ORDER BY hashint4(id::int) LIMIT 400")]
    await owner.close()
    settings = Settings(database_url=url, jwt_secret="x" * 40) if False else None
    from api.settings import load_settings  # noqa
    os.environ.setdefault("VAXVAULT_DATABASE_URL", url)
    os.environ.setdefault("VAXVAULT_JWT_SECRET", "bench-secret-long-enough-for-production-use-0123456789")
    settings = load_settings(os.environ)
    pool = await create_pool(settings, min_size=10)
    compiler = Compiler(build_schema(production=True), production=True)
    text = OURS[query]
    results = {a: [], b: []}
    rng = random.Random(1)

    async def one() -> float:
        rid, center = pairs[rng.randrange(len(pairs))]
        if query == "center_latest_doses":
            p, v = Principal(Role.CENTER_STAFF, sub=f"s{center}", center_id=center), {"centerId": str(center)}
        elif query == "recipient_with_doses":
            p, v = Principal(Role.ADMIN, sub="a"), {"id": str(rid)}
        else:
            p, v = Principal(Role.CENTER_STAFF, sub=f"s{center}", center_id=center), {"id": str(rid)}
        t = time.perf_counter()
        answer = await compiler.answer(pool, p, "lat", text, None, v)
        assert answer is not None
        return time.perf_counter() - t

    for r in range(rounds + 1):
        for name in ([a, b] if r % 2 else [b, a]):
            compiler_module.AuditCommits = impl[name]
            compiler.commits = {}
            end = time.monotonic() + 6
            lat: list[float] = []

            async def worker() -> None:
                while time.monotonic() < end:
                    lat.append(await one())
            await asyncio.gather(*(worker() for _ in range(clients)))
            if r:
                results[name] += lat
                q = statistics.quantiles(lat, n=100)
                print(f"r{r} {os.path.basename(name)}: n {len(lat)}, p50 {1000*q[49]:.1f} ms, "
                      f"p90 {1000*q[89]:.1f}, p99 {1000*q[98]:.1f}; load {os.getloadavg()[0]:.1f}", flush=True)
    for name, lat in results.items():
        q = statistics.quantiles(lat, n=100)
        w = WAITS.get(name, [])
        print(f"ALL {os.path.basename(name)}: n {len(lat)}, p50 {1000*q[49]:.1f} ms, p90 {1000*q[89]:.1f}, p99 {1000*q[98]:.1f}; "
              f"flusher acquires {len(w)}, waiting {1000*sum(w):.0f} ms in all, {1000*sum(w)/max(len(lat),1):.2f} ms per read")
    await pool.close()

asyncio.run(main())
