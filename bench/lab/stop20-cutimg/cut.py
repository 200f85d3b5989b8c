"""The incident's incremental (prep: bench/lab/stop19-restore2/prep.py N) with main's code and this
checkout's, alternated for R rounds: wall, CPU (client + server), the run's phases, segment bytes.
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-cutimg/cut.py 1000000 R [MAIN_CODE_DIR]"""
import json, shutil, sys
from pathlib import Path
from bench.cluster import CACHE, admin, clone_database, start_cluster, drop_database
from bench.server import VAXVAULT
sys.path.insert(0, str(Path(__file__).parents[1] / "stop19-restore2"))
from cpu import measured

n = int(sys.argv[1]); rounds = int(sys.argv[2])
W = CACHE / "rs"
main_code = sys.argv[3] if len(sys.argv) > 3 else str(W / "main-code")
cluster = start_cluster()


def once(code):
    repo, spool = W / "cut-repo", W / "cut-spool"
    shutil.rmtree(repo, ignore_errors=True); shutil.rmtree(spool, ignore_errors=True)
    shutil.copytree(W / f"repo-{n}.full", repo)
    url = clone_database(cluster, f"rs_damaged_{n}", "rs_cut_x")
    admin(url, "CHECKPOINT")
    env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repo.as_uri(),
           "VAXVAULT_BACKUP_SPOOL_DIR": str(spool), "PYTHONPATH": code}
    out = W / "cut.json"
    measured(cluster, "main" if code else "branch", [[str(VAXVAULT), "backup", "run", "--incremental", "--json"]], out, env=env)
    summary = json.loads(out.read_text())
    sizes = {p.name: p.stat().st_size for p in (repo / "segments").rglob("*") if p.is_file()}
    print("   ", summary.get("phases"), "bytes", sum(sizes.values()), sizes, flush=True)
    drop_database(cluster, "rs_cut_x"); shutil.rmtree(repo); shutil.rmtree(spool, ignore_errors=True)


for r in range(rounds):
    for code in (["", main_code] if r % 2 == 0 else [main_code, ""]):
        once(code)
