"""The lost-record restore at 1M and 10M alternating, each on a fresh clone of rs_shipped_N
(prep.py), after a CHECKPOINT: wall, CPU (client + backends), peak RSS, seconds per step, and the
restore backend's wait events (sampled every 50 ms) and bytes written.
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-scale/grow.py 2 [1000000,10000000] [--dry-first]"""
import asyncio, json, os, shutil, sys, threading, time
from pathlib import Path
import asyncpg
from bench.cluster import CACHE, admin, clone_database, start_cluster, drop_database
from bench.server import VAXVAULT
sys.path.insert(0, str(Path(__file__).parent.parent / "stop19-restore2"))  # its cpu.py
from cpu import measured

rounds = int(sys.argv[1])
sizes = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("-") else "1000000,10000000").split(",")]
W = CACHE / "rs"
cluster = start_cluster()


def watch(url, stop, waits):
    async def run():
        conn = await asyncpg.connect(url)
        while not stop.is_set():
            rows = await conn.fetch("SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') w FROM pg_stat_activity "
                                    "WHERE datname = 'rs_trial' AND pid <> pg_backend_pid() AND state = 'active' "
                                    "AND backend_type = 'client backend'")
            for r in rows:
                waits[r["w"]] = waits.get(r["w"], 0) + 1
            await asyncio.sleep(0.05)
        await conn.close()
    asyncio.run(run())


def once(n):
    as_of, where = (W / f"incident-{n}.txt").read_text().split("\n")[:2]
    repo, spool = W / "trial-repo", W / "trial-spool"
    shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
    shutil.copytree(W / f"repo-{n}.base", repo)
    url = clone_database(cluster, f"rs_shipped_{n}", "rs_trial")
    admin(url, "CHECKPOINT")
    env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(), "VAXVAULT_BACKUP_SPOOL_DIR": str(spool)}
    base = [str(VAXVAULT), "restore", "records", "--as-of", as_of, "--table", "doses", "--where", where, "--json"]
    out = W / "grow.json"
    if "--dry-first" in sys.argv:
        measured(cluster, f"{n} dry", [[*base, "--dry-run"]], out, env)
    stop = threading.Event(); waits = {}
    t = threading.Thread(target=watch, args=(url, stop, waits)); t.start()
    measured(cluster, f"{n} rest", [base], out, env)
    stop.set(); t.join()
    real = json.loads(out.read_text())
    left = admin(url, f"SELECT count(*) FROM doses WHERE {where} AND administered_on IS NULL")
    total = sum(waits.values()) or 1
    print(f"          restored {real['restored']} chunks {real['plan']['chunks_read']}/{real['plan']['chunks_total']} "
          f"timings {real.get('timings')} still NULL {left}\n          waits "
          f"{ {k: round(v / total, 2) for k, v in sorted(waits.items(), key=lambda kv: -kv[1])[:6]} }", flush=True)
    drop_database(cluster, "rs_trial")


def buffers(value):
    """Restart the cluster with shared_buffers = value (BUFFERS=256MB,2GB alternates them)."""
    admin(cluster.url(), f"ALTER SYSTEM SET shared_buffers = '{value}'")
    cluster.stop(); cluster.start()
    print("shared_buffers", admin(cluster.url(), "SELECT current_setting('shared_buffers')"), flush=True)


settings = os.environ.get("BUFFERS", "").split(",") if os.environ.get("BUFFERS") else [None]
for r in range(rounds):
    for b in (settings if r % 2 == 0 else settings[::-1]):
        if b:
            buffers(b)
        for n in (sizes if r % 2 == 0 else sizes[::-1]):
            once(n)
if settings[0]:
    buffers("2GB")
