"""Full backups at N recipients, alternating sides each round: ours (`vaxvault backup run --full`
to a file:// repository), `pg_dump | zstd -3`, and pgBackRest full (zstd 3, process-max 2).
Prints wall seconds, client CPU seconds (wait4 of every client process), server CPU seconds (the
cluster's backends), bytes and the load average. Run from a worktree with the bench cache:
    PYTHONPATH=. .venv/bin/python bench/lab/stop19-snapshot2/fullcmp.py 1000000 3 [ours,zstd,pgbr]
"""
import os, sys, time, shutil, subprocess, json
from pathlib import Path
sys.path.insert(0, os.path.dirname(__file__))
from cpu_dir import server_cpu
from bench import snapshot, pgbackrest_peer
from bench.cluster import start_cluster, seeded_database, drop_database, clone_database
from bench.server import VAXVAULT

n = int(sys.argv[1]); rounds = int(sys.argv[2])
wanted = (sys.argv[3] if len(sys.argv) > 3 else "ours,zstd,pgbr").split(",")
if len(sys.argv) > 4:
    # A copy of a cluster that already holds bench_N (e.g. pg_basebackup of `scale`'s 10M
    # cluster), started here; ours runs on bench_N itself (no clone: it is this script's copy).
    from api.embedded_postgres import EmbeddedPostgres
    from bench.cluster import SeededDatabase
    cluster = EmbeddedPostgres(Path(sys.argv[4]))
    cluster.start()
    db = SeededDatabase(f"bench_{n}", cluster.url(f"bench_{n}"), n, None)
else:
    cluster = start_cluster()
    db = seeded_database(cluster, n)
snapshot.WORK.mkdir(parents=True, exist_ok=True)


def measure(commands, output=None, env=None, data_dir=cluster.data_dir):
    """Wall, client CPU, server CPU of a pipeline."""
    s0 = server_cpu(data_dir)
    started = time.perf_counter()
    procs = []
    sink = open(output, "wb") if output else open(os.devnull, "wb")
    prev = None
    for i, cmd in enumerate(commands):
        last = i == len(commands) - 1
        p = subprocess.Popen(cmd, stdin=prev.stdout if prev else subprocess.DEVNULL,
                             stdout=sink if last else subprocess.PIPE, stderr=subprocess.PIPE if last else None,
                             env={**os.environ, **(env or {})})
        if prev is not None:
            prev.stdout.close()
        procs.append(p); prev = p
    cpu = 0.0; rss = 0; err = b""
    for p in procs:
        if p.stderr is not None:
            err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{p.args[0]} failed: {err[-800:]!r}")
        cpu += usage.ru_utime + usage.ru_stime; rss += usage.ru_maxrss
    wall = time.perf_counter() - started
    sink.close()
    return wall, cpu, server_cpu(data_dir) - s0, rss / 1024, err


label = f"snap{n}"
scratch_name = f"bench_scratch_backup_{label}"
repo = snapshot.WORK / f"repo-{label}"; spool = snapshot.WORK / f"spool-{label}"
env = None
if "ours" in wanted or "base" in wanted:
    from bench.cluster import admin
    # Kept between runs (drop it by hand): the clone and `backup init` cost ~10 s.
    exists = admin(cluster.url(), f"SELECT 1 FROM pg_database WHERE datname = '{scratch_name}'")
    if len(sys.argv) > 4:
        url = db.url
    else:
        url = cluster.url(scratch_name) if exists else clone_database(cluster, db.name, scratch_name)
    env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(),
           "VAXVAULT_BACKUP_SPOOL_DIR": str(spool)}
    subprocess.run([str(VAXVAULT), "backup", "init"], check=True, env={**os.environ, **env}, capture_output=True)


def ours(cli=str(VAXVAULT), code=os.getcwd()):
    shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
    # PYTHONPATH names the code the CLI runs (this script's own runs with PYTHONPATH=.).
    w, c, s, rss, err = measure([[cli, "backup", "run", "--full"]], env={**env, "PYTHONPATH": code})
    size = sum(f.stat().st_size for f in repo.rglob("*") if f.is_file())
    return w, c, s, size, rss


def main_code():
    """The same run with the branch's starting code (git archive of its first commit in
    /tmp/snapshot2-base), through this virtualenv."""
    return ours(str(VAXVAULT), os.environ.get("BASE_CODE", "/tmp/snapshot2-base"))


def zstd():
    out = snapshot.WORK / f"{label}.sql.zst"
    w, c, s, rss, _ = measure([["pg_dump", db.url], ["zstd", "-3", "-q", "-c"]], output=out)
    size = out.stat().st_size; out.unlink()
    return w, c, s, size, rss


pgbr_state = {}
if "pgbr" in wanted:
    dump = snapshot.WORK / f"{label}.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump), db.url], check=True)
    source, config, first = pgbackrest_peer.full_backup(dump, pgbackrest_peer.LIKE_OURS)
    dump.unlink()
    source.stop()
    pgbr_state.update(source=source, config=config, bytes=pgbackrest_peer.backup_bytes())


def pgbr():
    source = pgbr_state["source"]
    source.start()
    try:
        w, c, s, rss, _ = measure([pgbackrest_peer._as_user(source, "pgbackrest", f"--config={pgbr_state['config']}",
                                   "--stanza=bench", "--type=full", "backup")], data_dir=source.data_dir)
    finally:
        source.stop()
    total = pgbackrest_peer.backup_bytes()
    size, pgbr_state["bytes"] = total - pgbr_state.get("bytes", 0), total
    return w, c, s, size, rss


sides = [(name, fn) for name, fn in (("ours", ours), ("base", main_code), ("zstd", zstd), ("pgbr", pgbr)) if name in wanted]
for r in range(rounds):
    order = sides if r % 2 == 0 else sides[::-1]
    for name, fn in order:
        load = os.getloadavg()[0]
        w, c, s, size, rss = fn()
        print(f"round {r} {name:5s} wall {w:6.2f} s  cpu client {c:5.2f} server {s:5.2f} total {c+s:5.2f}  "
              f"{size:>12,} B  rss {rss:6.1f} MiB  load {load:.1f}", flush=True)
if pgbr_state:
    pgbr_state["source"].destroy()
if len(sys.argv) > 4:
    cluster.stop()  # the cluster given on the command line was started here
