"""Seed N recipients into a fresh database of the bench cluster with a `vaxvault` CLI, time it
(wall; CPU of the seed process tree from getrusage; CPU of the server backend serving it and its
parallel workers, polled from /proc), and compare the rows with a reference database:

    PYTHONPATH=. .venv/bin/python /work/notes/scale-scripts/seed_check.py N [REFERENCE_DB|-] [NAME] [VAXVAULT]

VAXVAULT defaults to this checkout's; pass /work/main/.venv/bin/vaxvault for main's seed.
"""
import asyncio, os, resource, subprocess, sys, threading, time
from pathlib import Path
import asyncpg
from api.db.migrate import migrate
from bench.cluster import VAXVAULT, admin, start_cluster

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _ppid(pid):
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def poll_server(database, stop, seen, postmaster):
    """Max CPU seen per backend of `database` and per parallel worker of this cluster."""
    while not stop.is_set():
        backends = set()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("postgres: ") and (f" {database} " in cmd or "parallel worker" in cmd):
                try:
                    if _ppid(proc.name) != postmaster:
                        continue
                    seen[proc.name] = max(seen.get(proc.name, 0.0), _cpu(proc.name))
                except (OSError, IndexError):
                    pass
        time.sleep(0.2)


async def digest(url, table):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(f"SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {table} t")
    finally:
        await conn.close()


def main():
    n = int(sys.argv[1])
    ref = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
    name = sys.argv[3] if len(sys.argv) > 3 else f"seedcheck_{n}"
    cli = sys.argv[4] if len(sys.argv) > 4 else str(VAXVAULT)
    cluster = start_cluster()
    url = cluster.url(name)
    admin(cluster.url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    asyncio.run(migrate(url))
    load_before = os.getloadavg()
    postmaster = int((Path("bench/.cache/postgres/data") / "postmaster.pid").read_text().split()[0])
    stop, seen = threading.Event(), {}
    poller = threading.Thread(target=poll_server, args=(name, stop, seen, postmaster), daemon=True)
    poller.start()
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([cli, "db", "seed", "--recipients", str(n), "--seed", "1"], check=True,
                   env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "VAXVAULT_DATABASE_URL": url}, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - t0
    stop.set(); poller.join()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{cli} seed {n}: {wall:.1f} s wall, client CPU {cpu:.1f} s, server CPU ~{sum(seen.values()):.1f} s "
          f"(backend + parallel workers, polled every 0.2 s), "
          f"load {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    if ref:
        for table in ("centers", "recipients", "doses"):
            a = asyncio.run(digest(url, table)); b = asyncio.run(digest(cluster.url(ref), table))
            print(f"  {table}: {'same rows as ' + ref if a == b else 'DIFFERENT from ' + ref}", flush=True)
    print(f"  database size {int(str(admin(url, 'SELECT pg_database_size(current_database())'))) / 2**20:.0f} MiB", flush=True)
    if "--keep" not in sys.argv:
        admin(cluster.url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


main()
