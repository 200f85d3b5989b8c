"""One restore (or dry run with --dry-run) on a fresh clone with log_min_duration_statement,
then the statements that took >= 100 ms, from the cluster log.
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-restore2/statements.py 1000000 [--dry-run]"""
import json, re, shutil, sys
from bench.cluster import CACHE, admin, clone_database, start_cluster, drop_database
from bench.process import run_pipeline
from bench.server import VAXVAULT
n = int(sys.argv[1]); extra = sys.argv[2:]
W = CACHE / "rs"
as_of, where = (W / f"incident-{n}.txt").read_text().split("\n")[:2]
cluster = start_cluster()
repo = W / "trial-repo"
shutil.rmtree(repo, ignore_errors=True); shutil.copytree(W / f"repo-{n}.base", repo)
url = clone_database(cluster, f"rs_shipped_{n}", "rs_stmt")
admin(url, "ALTER DATABASE rs_stmt SET log_min_duration_statement = 100", "CHECKPOINT")
if "--explain" in extra:
    extra.remove("--explain")
    admin(url, "ALTER DATABASE rs_stmt SET session_preload_libraries = 'auto_explain'",
          "ALTER DATABASE rs_stmt SET auto_explain.log_min_duration = 1000",
          "ALTER DATABASE rs_stmt SET auto_explain.log_analyze = on",
          "ALTER DATABASE rs_stmt SET auto_explain.log_nested_statements = on")
log = cluster.log_file; start = log.stat().st_size
env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(), "VAXVAULT_BACKUP_SPOOL_DIR": str(W / "trial-spool")}
out = W / "stmt.json"
m = run_pipeline([[str(VAXVAULT), "restore", "records", "--as-of", as_of, "--table", "doses", "--where", where, "--json", *extra]], out, env=env)
print(m, json.loads(out.read_text()).get("timings"))
text = log.read_text(errors="replace")[start:]
for entry in re.split(r"\n(?=\d{4}-\d\d-\d\d )", text):
    if "duration:" in entry:
        print(entry if "plan:" in entry else entry[:300].replace("\n", " ")); print("---")
drop_database(cluster, "rs_stmt")
