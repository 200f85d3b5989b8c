"""How the audit flusher fares on a small pool under a stream of reads (--clients loops, each read after the last): main's (a pool acquire per batch)
against this branch's (one acquire held while rows keep coming). Counts, not speed: reads
answered vs failed (failed = fallen back to strawberry in the server), INSERTs, and acquires made
by the flusher (every acquire minus one per read).

    PYTHONPATH=. .venv/bin/python bench/lab/stop19-apifix/flusher_pool.py [--reads 2000] [--pool 2] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from api.compiled import compiler as compiler_module
from api.db.pool import API_ROLE, ApiConnection, reset_unless_clean
from api.principal import Role
from tests import harness
from tests.api.client import principal
from tests.api.compiled_paths import COMPILER

RECIPIENT = """query R($id: ID!) { recipient(id: $id) { id fullName nationalId
  doses { id doseNumber administeredOn } } }"""


def _main_audit_commits() -> type:
    source = subprocess.run(["git", "show", "main:api/compiled/audit_commit.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "main_audit_commit.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("main_audit_commit", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.AuditCommits  # type: ignore[no-any-return]


async def burst(url: str, commits_class: type, reads: int, size: int,
                clients: int) -> dict[str, float]:
    acquires = 0
    statements: list[str] = []

    async def setup(conn: asyncpg.Connection) -> None:
        nonlocal acquires
        acquires += 1

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: statements.append(record.query))

    pool = await asyncpg.create_pool(url, min_size=size, max_size=size, init=init, setup=setup,
                                     server_settings={"role": API_ROLE},
                                     connection_class=ApiConnection, reset=reset_unless_clean)
    compiler_module.AuditCommits = commits_class  # type: ignore[attr-defined]
    COMPILER.commits.clear()
    admin = principal(Role.ADMIN)
    cpu, wall = time.process_time(), time.perf_counter()
    outcomes: list[object] = []
    latencies: list[float] = []

    async def client(c: int) -> None:
        # One client: its reads one after another, as a portal user's would be.
        for i in range(reads // clients):
            started = time.perf_counter()
            try:
                outcomes.append(await COMPILER.answer(pool, admin, f"b{c}-{i}", RECIPIENT, None,
                                                      {"id": str(1 + (c * 7 + i) % 300)}))
            except Exception as exc:
                outcomes.append(exc)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*[client(c) for c in range(clients)])
    reads = len(outcomes)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await pool.close()
    inserts = sum(1 for s in statements if s.startswith("INSERT"))
    failed = sum(1 for o in outcomes if isinstance(o, BaseException))
    return {"answered": reads - failed, "failed": failed, "inserts": inserts,
            "flusher_acquires": acquires - reads, "client_cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * statistics.quantiles(latencies, n=100)[98], 1)}


async def bursts(url: str, args: argparse.Namespace) -> None:
    variants = {"main": _main_audit_commits(),
                "branch": compiler_module.AuditCommits}  # type: ignore[attr-defined]
    for round_ in range(args.rounds):
        for name, cls in variants.items():
            print(round_, name, await burst(url, cls, args.reads, args.pool, args.clients), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    # The harness's helpers run their own event loops: set up first, then measure.
    with tempfile.TemporaryDirectory(prefix="vaxvault-lab-") as root, \
            harness.postgres_server(Path(root)) as server:
        template = harness.create_template(server, "lab_seeded", harness.SEEDED_RECIPIENTS)
        url = harness.create_database(server, harness.unique_name("lab"), template=template)
        asyncio.run(bursts(url, args))


if __name__ == "__main__":
    main()
    sys.exit(0)
