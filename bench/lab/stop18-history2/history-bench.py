"""Throwaway cluster + small seeded DB, then bench.history (this tree) with main as peer."""
import asyncio, subprocess, sys, os
from pathlib import Path
import asyncpg
from api.embedded_postgres import EmbeddedPostgres
from api.db.migrate import migrate
from api.db.seed import seed

root = Path("/tmp/history2-pg")
cluster = EmbeddedPostgres(root, throwaway=True)
url = cluster.start()
async def prep():
    conn = await asyncpg.connect(url)
    await conn.execute("CREATE DATABASE hist")
    await conn.close()
    db = url.rsplit("/", 1)[0] + "/hist"
    await migrate(db)
    conn = await asyncpg.connect(db)
    await seed(conn, 1000, seed_value=7)
    await conn.close()
    return db
try:
    db = asyncio.run(prep())
    subprocess.run([sys.executable, "-m", "bench.history", "--database-url", db, *sys.argv[1:]], check=True)
finally:
    cluster.destroy()
