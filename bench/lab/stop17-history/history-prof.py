import asyncio, cProfile, pstats, sys, tempfile, subprocess
from pathlib import Path
import asyncpg
from api.embedded_postgres import EmbeddedPostgres
from api.db.migrate import migrate
from api.db.seed import seed
import bench.history as h
from backup.config import BackupConfig
from backup.runner import run_backup
from backup.storage import keys
from backup.storage.index import INDEX_KEY
from backup.storage.manifest import load
from backup.storage.repository import open_repository

cluster = EmbeddedPostgres(Path("/tmp/history-pg2"), throwaway=True)
url = cluster.start()
async def go():
    conn = await asyncpg.connect(url); await conn.execute("CREATE DATABASE hist"); await conn.close()
    db = url.rsplit("/", 1)[0] + "/hist"
    await migrate(db)
    conn = await asyncpg.connect(db); await seed(conn, 200, seed_value=7); await h.install(conn)
    work = Path(tempfile.mkdtemp())
    config = BackupConfig(database_url=db, spool_dir=work/"spool", primary_url=(work/"repo").as_uri())
    repo = open_repository(config.primary_url)
    await run_backup(config, full=True)
    await conn.execute("UPDATE centers SET name = name || '' WHERE id = 1"); await conn.close()
    seg = (await run_backup(config, full=False)).segment_id
    t = load(repo.get(keys.format_segment_manifest_key(seg)), seg)
    h._fabricate(repo, t, repo.get(t.object.key), 0, 1999)
    repo.delete(INDEX_KEY)
    await run_backup(config, full=False)
    await run_backup(config, full=False)
    pr = cProfile.Profile(); pr.enable()
    for _ in range(3): await run_backup(config, full=False)
    pr.disable()
    pstats.Stats(pr).sort_stats("cumulative").print_stats(25)
try:
    asyncio.run(go())
finally:
    cluster.destroy()
