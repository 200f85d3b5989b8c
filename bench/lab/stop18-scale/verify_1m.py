"""`backup verify --deep` peak memory, main's code (whole objects) vs this branch's (streamed),
alternating on one repository holding a full snapshot of a scratch copy of bench_N and the
incremental that ships the incident's 266,561-row damage (the bench's own steps):
    .venv/bin/python /work/notes/scale-scripts/verify_1m.py [N]   (from the worktree root)"""
import os, shutil, sys
from bench.cluster import admin, clone_database, drop_database, start_cluster
from bench.process import run_pipeline
from bench.restore import lost_count
from bench.snapshot import WORK, Scratch, vaxvault

n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1_000_000
os.environ.pop("PYTHONPATH", None)  # run_pipeline passes os.environ on: each CLI imports its own tree
cluster = start_cluster()
name = f"verifymem_{n}"
repo, spool = WORK / f"verifymem-repo-{n}", WORK / f"verifymem-spool-{n}"
shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
url = clone_database(cluster, f"bench_{n}", name)
env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(), "VAXVAULT_BACKUP_SPOOL_DIR": str(spool)}
scratch = Scratch(name, env)
try:
    vaxvault(scratch, "backup", "init")
    vaxvault(scratch, "backup", "run", "--full")
    import datetime as dt, time
    time.sleep(1.0)
    AS_OF = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    time.sleep(1.5)
    last = admin(url, f"SELECT id FROM doses WHERE dose_number = 1 ORDER BY id OFFSET {lost_count(n) - 1} LIMIT 1")
    admin(url, f"UPDATE doses SET administered_on = NULL WHERE dose_number = 1 AND id <= {last}")
    vaxvault(scratch, "backup", "run", "--incremental")
    if "--restore" in sys.argv:  # as the bench does before its verify
        import datetime as dt
        vaxvault(scratch, "restore", "records", "--as-of", AS_OF,
                 "--table", "doses", "--where", f"dose_number = 1 AND id <= {last}")
    biggest = sorted((f.stat().st_size, str(f.relative_to(repo))) for f in repo.rglob("*") if f.is_file())[-3:]
    print("largest objects:", biggest, flush=True)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    sides = {"main (whole objects)": "/work/main/.venv/bin/vaxvault",
             "scale (streamed)": os.path.abspath(".venv/bin/vaxvault")}
    for round_ in (1, 2):
        for label, cli in sides.items():
            m = run_pipeline([[cli, "backup", "verify", "--deep"]], env={**clean, **env})
            print(f"round {round_} {label}: {m.seconds} s, peak {m.peak_rss_mib} MiB, load {os.getloadavg()[0]:.1f}",
                  flush=True)
finally:
    drop_database(cluster, name)
    shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
