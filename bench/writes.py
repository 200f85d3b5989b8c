"""Write throughput: INSERTs into doses, one row per committed transaction, from concurrent
clients, on a scratch copy of the seeded database; with change capture when this build has it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import date

import asyncpg

from api.embedded_postgres import EmbeddedPostgres
from bench.cluster import CACHE, clone_database, drop_database
from bench.progress import say
from bench.server import VAXVAULT
from bench.snapshot import backup_command_available

CLIENTS = 8
ROUNDS = 2
_TICK = os.sysconf("SC_CLK_TCK")
# Dose number 6 never occurs in the seed, so every (recipient, 6) insert is new.
INSERT = """INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number, administered_on,
                               center_id, recorded_by)
            VALUES ($1, 6, 'AZD1222', 'BENCH00001', $2, 1, 'bench')"""


@dataclass(frozen=True)
class WriteResult:
    capture: bool
    available: bool
    inserts_per_s: float | None = None
    inserts: int | None = None
    note: str = ""
    # utime + stime of the clients' backends per insert: what the server spent, which the
    # neighbours' load on a shared machine inflates far less than it cuts inserts/s.
    server_cpu_us: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def process_cpu(pid: int) -> float:
    """utime + stime of a process in seconds (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _load(url: str, recipients: int, seconds: float) -> tuple[int, float]:
    """(inserts, server CPU seconds of the clients' backends)."""
    pool = await asyncpg.create_pool(url, min_size=CLIENTS, max_size=CLIENTS)
    next_id = 0
    done = 0

    async def client(conn: asyncpg.Connection, deadline: float) -> None:
        nonlocal next_id, done
        while time.monotonic() < deadline and next_id < recipients:
            next_id += 1
            await conn.execute(INSERT, next_id, date(2023, 1, 1))
            done += 1

    try:
        conns = [await pool.acquire() for _ in range(CLIENTS)]
        pids = [await c.fetchval("SELECT pg_backend_pid()") for c in conns]
        before = sum(process_cpu(p) for p in pids)
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(client(c, deadline) for c in conns))
        cpu = sum(process_cpu(p) for p in pids) - before
        for c in conns:
            await pool.release(c)
    finally:
        await pool.close()
    return done, cpu


def _one(cluster: EmbeddedPostgres, source: str, recipients: int, seconds: float,
         capture: bool) -> WriteResult:
    scratch = f"bench_scratch_writes_{'capture' if capture else 'plain'}"
    url = clone_database(cluster, source, scratch)
    try:
        if capture:
            repository = CACHE / "dumps" / "writes-repo"
            env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repository.as_uri()}
            subprocess.run([str(VAXVAULT), "backup", "init"], check=True, capture_output=True,
                           env={**os.environ, **env})
        started = time.perf_counter()
        inserts, cpu = asyncio.run(_load(url, recipients, seconds))
        elapsed = time.perf_counter() - started
    finally:
        drop_database(cluster, scratch)
    result = WriteResult(capture, True, round(inserts / elapsed, 1), inserts,
                         server_cpu_us=round(cpu / max(inserts, 1) * 1e6, 1))
    say(f"inserts {'with' if capture else 'without'} capture: {result.inserts_per_s}/s, "
        f"server CPU {result.server_cpu_us} us/insert")
    return result


def _best(rounds: list[WriteResult]) -> WriteResult:
    best = max(rounds, key=lambda r: r.inserts_per_s or 0)
    rates = ", ".join(f"{r.inserts_per_s:,.0f}" for r in rounds)
    cpu = ", ".join(f"{r.server_cpu_us:,.0f}" for r in rounds)
    return WriteResult(best.capture, True, best.inserts_per_s, best.inserts,
                       note=f"best of {len(rounds)} interleaved rounds ({rates}/s); "
                            f"server CPU per insert {cpu} us", server_cpu_us=best.server_cpu_us)


def measure(cluster: EmbeddedPostgres, source: str, recipients: int, seconds: float) -> list[WriteResult]:
    """Interleaved rounds (off, on, off, on), best of each: the machine is shared, so a single
    round mostly measures the neighbours."""
    if not backup_command_available():
        return [_best([_one(cluster, source, recipients, seconds, capture=False)]),
                WriteResult(True, False, note="change capture not in this build yet "
                                              "(backup branch: vaxvault backup init)")]
    rounds: dict[bool, list[WriteResult]] = {False: [], True: []}
    for _ in range(ROUNDS):
        for capture in (False, True):
            rounds[capture].append(_one(cluster, source, recipients, seconds, capture))
    return [_best(rounds[False]), _best(rounds[True])]
