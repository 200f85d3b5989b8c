"""Where `backup list` (default) spends CPU at N units: a file:// stage filled by the listing
model's machine (no PostgreSQL), the list built 20 times under cProfile.
    cd /work/wt/history2 && PYTHONPATH=. .venv/bin/python /work/notes/history2-scripts/list-profile.py 2000"""
import cProfile, pstats, sys, tempfile, time
from pathlib import Path
from api.cli.backup_list import list_output
from backup.stages import Stage
from tests.backup.test_listing_model import KEY, _machine_on_file

n = int(sys.argv[1])
tmp = Path(tempfile.mkdtemp(prefix="history2-prof-"))
m = _machine_on_file(tmp)
m.cut("snapshot")
for i in range(n - 1):
    m.cut("segment")
m.ship(0, None)
stages = [Stage("spool", m.spool), Stage("primary", m.targets[0][1])]
list_output(stages, KEY, False)
for every in (False, True):
    started = time.process_time()
    for _ in range(20):
        list_output(stages, KEY, every)
    print(f"units {n} every={every}: {(time.process_time() - started) / 20 * 1000:.2f} ms CPU per list")
cProfile.run("for _ in range(20): list_output(stages, KEY, False)", "/tmp/history2-prof.out")
pstats.Stats("/tmp/history2-prof.out").sort_stats("cumulative").print_stats(18)
