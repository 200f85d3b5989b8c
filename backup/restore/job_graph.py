"""Jobs with dependencies run on a few database connections at once, the way `pg_restore -j`
spreads a restore's items over its workers.

Each connection runs one job at a time; a job starts once every job it names in `after` has
finished, and among the jobs that can start the heaviest goes first (the longest ones early, so
two workers end close together). The first failure stops everything: the jobs still running are
cancelled (asyncpg cancels their statements on the server and rolls their transactions back), no
further job starts, and the failure is raised once they have all stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[asyncpg.Connection], Awaitable[object]]
    after: tuple[str, ...] = ()
    weight: int = 0


@dataclass
class JobResults:
    values: dict[str, object] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # each job's own time, for profiles
    started: dict[str, float] = field(default_factory=dict)  # seconds after the first job began


async def run_jobs(connections: Sequence[asyncpg.Connection], jobs: Sequence[Job]) -> JobResults:
    """Run every job once on one of `connections`; job name -> what its `run` returned.

    Raises ValueError for a graph that could never finish (an unknown or duplicate name, a
    cycle), and the first exception a job raised (after the others have stopped)."""
    _check(jobs)
    pending = {job.name: job for job in jobs}
    results = JobResults()
    changed = asyncio.Condition()
    began = time.perf_counter()
    # Set by the failing job's own task before it yields: a worker whose job ends in the same
    # moment must not start another before the failure reaches the wait below and cancels it.
    stopped = False

    async def next_job() -> Job | None:
        async with changed:
            while pending and not stopped:
                ready = [j for j in pending.values() if all(d in results.values for d in j.after)]
                if ready:
                    job = max(ready, key=lambda j: j.weight)
                    del pending[job.name]
                    return job
                await changed.wait()
            return None

    async def worker(conn: asyncpg.Connection) -> None:
        nonlocal stopped
        while (job := await next_job()) is not None:
            started = time.perf_counter()
            try:
                value = await job.run(conn)
            except BaseException:
                stopped = True
                raise
            async with changed:
                results.values[job.name] = value
                results.started[job.name] = round(started - began, 3)
                results.seconds[job.name] = round(time.perf_counter() - started, 3)
                changed.notify_all()

    tasks = [asyncio.create_task(worker(conn)) for conn in connections]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # the first failure, raised here
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


def _check(jobs: Sequence[Job]) -> None:
    """ValueError unless every job can run: names unique and known, no cycle (Kahn's order)."""
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        twice = sorted(n for n in set(names) if names.count(n) > 1)
        raise ValueError(f"job graph has duplicate names: {twice}")
    unknown = sorted({d for job in jobs for d in job.after if d not in set(names)})
    if unknown:
        raise ValueError(f"job graph waits on unknown jobs: {unknown}")
    finished: set[str] = set()
    left = list(jobs)
    while left:
        ready = [job for job in left if set(job.after) <= finished]
        if not ready:
            raise ValueError(f"jobs {sorted(j.name for j in left)} wait on each other (a cycle)")
        finished.update(job.name for job in ready)
        left = [job for job in left if job.name not in finished]
