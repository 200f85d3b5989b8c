"""What change capture costs a single-row INSERT, counted in server CPU and WAL bytes as well as
inserts/s (the machine is shared: CPU seconds and bytes move little with the neighbours' load).

    python -m bench.capture_cost [--recipients 1000000] [--seconds 5] [--rounds 3] [--serial 5000]
                                 [--bulk 50000] [--variants off,on,logical]

Each variant gets its own scratch copy of the seeded database; rounds alternate the variants
(order reversed every round). A round is bench/writes.py's load (8 clients, one INSERT into
doses per committed transaction) for --seconds; per variant it reports inserts/s, the backends'
CPU (utime+stime from /proc) per insert and WAL bytes per insert. --serial N also runs N
single-row transactions inside one backend (a procedure that COMMITs after each INSERT), which
counts the server's own CPU per insert with no client or scheduling in it. --bulk N inserts N rows
with one INSERT ... SELECT (a restore writing lost rows back), CPU per row.

`logical` is logical-decoding capture (backup/capture/logical.py): it needs the bench cluster
started with wal_level=logical (add `wal_level = logical` to bench/.cache/postgres/data/
postgresql.auto.conf and restart it). Its writers pay no capture; the cost moves to the drain
that every backup run does first, reported after the rounds as CPU per drained change (the
drain's backend, the slot's decoding in it, plus this process's parsing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date

import asyncpg

from backup.capture import logical, triggers
from bench.cluster import clone_database, drop_database, seeded_database, start_cluster
from bench.writes import CLIENTS, INSERT, process_cpu

Setup = Callable[[asyncpg.Connection], Awaitable[object]]


async def _no_capture(conn: asyncpg.Connection) -> None:
    return None


async def _capture(conn: asyncpg.Connection) -> None:
    await triggers.install(conn)


async def _logical_capture(conn: asyncpg.Connection) -> None:
    await triggers.install(conn, mode="logical")


VARIANTS: dict[str, Setup] = {"off": _no_capture, "on": _capture, "logical": _logical_capture}

# One transaction per INSERT inside a single backend: the server's CPU per insert alone.
_SERIAL = """
CREATE OR REPLACE PROCEDURE public.bench_serial_inserts(first bigint, n integer) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 0 .. n - 1 LOOP
        INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number, administered_on,
                           center_id, recorded_by)
        VALUES (first + i, 6, 'AZD1222', 'BENCH00001', DATE '2023-01-01', 1, 'bench');
        COMMIT;
    END LOOP;
END $$
"""


@dataclass
class Sample:
    inserts: int
    seconds: float
    server_cpu: float
    wal_bytes: int
    load: float

    @property
    def rate(self) -> float:
        return self.inserts / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.server_cpu / self.inserts * 1e6

    @property
    def wal_per_insert(self) -> float:
        return self.wal_bytes / self.inserts


@dataclass
class Variant:
    name: str
    url: str
    next_id: int = 1
    load: list[Sample] = field(default_factory=list)
    serial: list[Sample] = field(default_factory=list)
    bulk: list[Sample] = field(default_factory=list)


async def _wal_lsn(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'"))


async def _load_round(variant: Variant, seconds: float) -> Sample:
    pool = await asyncpg.create_pool(variant.url, min_size=CLIENTS, max_size=CLIENTS)
    try:
        conns = [await pool.acquire() for _ in range(CLIENTS)]
        pids = [await c.fetchval("SELECT pg_backend_pid()") for c in conns]
        for c in conns:  # the statement prepared before the clock starts
            await c.execute("SELECT 1")
        cpu0 = sum(process_cpu(p) for p in pids)
        lsn0 = await _wal_lsn(conns[0])
        started = time.perf_counter()
        deadline = time.monotonic() + seconds
        done = 0

        async def client(conn: asyncpg.Connection) -> None:
            nonlocal done
            while time.monotonic() < deadline:
                rid = variant.next_id
                variant.next_id += 1
                await conn.execute(INSERT, rid, date(2023, 1, 1))
                done += 1

        await asyncio.gather(*(client(c) for c in conns))
        elapsed = time.perf_counter() - started
        cpu = sum(process_cpu(p) for p in pids) - cpu0
        wal = await _wal_lsn(conns[0]) - lsn0
        for c in conns:
            await pool.release(c)
    finally:
        await pool.close()
    return Sample(done, elapsed, cpu, wal, os.getloadavg()[0])


async def _serial_round(variant: Variant, n: int) -> Sample:
    conn = await asyncpg.connect(variant.url)
    try:
        await conn.execute(_SERIAL)
        # No wait for the WAL flush at each commit: the loop counts CPU, not the disk's fsyncs.
        await conn.execute("SET synchronous_commit = off")
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        first = variant.next_id
        variant.next_id += n
        await conn.execute(f"CALL public.bench_serial_inserts({first}, 50)")  # warm caches and plans
        first += 50
        cpu0, lsn0 = process_cpu(pid), await _wal_lsn(conn)
        started = time.perf_counter()
        await conn.execute(f"CALL public.bench_serial_inserts({first}, {n - 50})")
        elapsed = time.perf_counter() - started
        cpu, wal = process_cpu(pid) - cpu0, await _wal_lsn(conn) - lsn0
    finally:
        await conn.close()
    return Sample(n - 50, elapsed, cpu, wal, os.getloadavg()[0])


async def _bulk_round(variant: Variant, n: int) -> Sample:
    """One INSERT ... SELECT of n rows (how a restore writes lost rows back), in one transaction."""
    conn = await asyncpg.connect(variant.url)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        first = variant.next_id
        variant.next_id += n
        cpu0, lsn0 = process_cpu(pid), await _wal_lsn(conn)
        started = time.perf_counter()
        await conn.execute(
            "INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number, administered_on, "
            "center_id, recorded_by) SELECT r, 6, 'AZD1222', 'BENCH00001', DATE '2023-01-01', 1, 'bench' "
            "FROM generate_series($1::bigint, $2::bigint) r", first, first + n - 1)
        elapsed = time.perf_counter() - started
        cpu, wal = process_cpu(pid) - cpu0, await _wal_lsn(conn) - lsn0
    finally:
        await conn.close()
    return Sample(n, elapsed, cpu, wal, os.getloadavg()[0])


async def _drain(url: str) -> tuple[int, float, float]:
    """(changes, CPU seconds of the drain's backend and of this process, wall seconds) of draining
    everything the rounds wrote into the change log, as a backup run's cut does."""
    conn = await asyncpg.connect(url)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        cpu0, client0, started = process_cpu(pid), os.times(), time.perf_counter()
        async with conn.transaction(isolation="repeatable_read"):
            await logical.lock(conn)
            changes = await logical.drain(conn, url)
        client = os.times()
        cpu = process_cpu(pid) - cpu0 + (client.user - client0.user) + (client.system - client0.system)
        return changes, cpu, time.perf_counter() - started
    finally:
        await conn.close()


async def _drop_slot(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                           "WHERE database = current_database()")
    finally:
        await conn.close()


async def _setup(url: str, setup: Setup) -> None:
    conn = await asyncpg.connect(url)
    try:
        await setup(conn)
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def _summary(samples: list[Sample]) -> str:
    if not samples:
        return "-"
    med = statistics.median
    return (f"{med(s.rate for s in samples):8,.0f}/s  cpu {med(s.cpu_us for s in samples):6.1f} us  "
            f"wal {med(s.wal_per_insert for s in samples):6.0f} B  "
            f"(rates {', '.join(f'{s.rate:,.0f}' for s in samples)}; "
            f"cpu {', '.join(f'{s.cpu_us:.0f}' for s in samples)}; "
            f"load {', '.join(f'{s.load:.1f}' for s in samples)})")


def run(recipients: int, seconds: float, rounds: int, serial: int, bulk: int,
        variants: dict[str, Setup]) -> list[Variant]:
    cluster = start_cluster()
    source = seeded_database(cluster, recipients).name
    chosen = []
    for name, setup in variants.items():
        url = clone_database(cluster, source, f"bench_scratch_capture_{name}")
        asyncio.run(_setup(url, setup))
        chosen.append(Variant(name, url))
    try:
        for r in range(rounds):
            for variant in (chosen if r % 2 == 0 else chosen[::-1]):
                if seconds:
                    variant.load.append(asyncio.run(_load_round(variant, seconds)))
                if serial:
                    variant.serial.append(asyncio.run(_serial_round(variant, serial)))
                if bulk:
                    variant.bulk.append(asyncio.run(_bulk_round(variant, bulk)))
                print(f"round {r + 1} {variant.name}: load {_summary(variant.load[-1:])}  "
                      f"serial {_summary(variant.serial[-1:])}  bulk {_summary(variant.bulk[-1:])}",
                      flush=True)
        for variant in chosen:
            if variant.name == "logical":
                changes, cpu, wall = asyncio.run(_drain(variant.url))
                print(f"drain: {changes:,} changes in {wall:.2f} s; CPU {cpu:.2f} s "
                      f"= {cpu / max(changes, 1) * 1e6:.1f} us per change (backend + client)", flush=True)
    finally:
        for variant in chosen:
            asyncio.run(_drop_slot(variant.url))
            drop_database(cluster, f"bench_scratch_capture_{variant.name}")
    print(f"\n{recipients:,} recipients, {rounds} rounds, medians:")
    for variant in chosen:
        print(f"  {variant.name:>12} load   {_summary(variant.load)}")
        print(f"  {'':>12} serial {_summary(variant.serial)}")
        print(f"  {'':>12} bulk   {_summary(variant.bulk)}")
    base = chosen[0]
    print(f"\nserver CPU per insert above {base.name}, median of the rounds' differences "
          "(each round runs every variant back to back):")
    for variant in chosen[1:]:
        cells = [f"{mode} {_paired(getattr(variant, mode), getattr(base, mode))}"
                 for mode in ("load", "serial", "bulk") if getattr(variant, mode)]
        print(f"  {variant.name:>12} " + "  ".join(cells))
    return chosen


def _paired(samples: list[Sample], base: list[Sample]) -> str:
    extra = [s.cpu_us - b.cpu_us for s, b in zip(samples, base, strict=True)]
    ratio = [s.rate / b.rate for s, b in zip(samples, base, strict=True)]
    return (f"+{statistics.median(extra):.1f} us ({', '.join(f'{e:+.0f}' for e in extra)}), "
            f"rate x{statistics.median(ratio):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serial", type=int, default=5000)
    parser.add_argument("--bulk", type=int, default=0, help="rows of one INSERT ... SELECT per round")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    run(args.recipients, args.seconds, args.rounds, args.serial, args.bulk,
        {name: VARIANTS[name] for name in args.variants.split(",")})


if __name__ == "__main__":
    main()
