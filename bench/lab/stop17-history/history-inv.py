import tempfile, uuid, time, cProfile, pstats
from pathlib import Path
from tests.backup.test_listing_model import ListingMachine, KEY
from backup.storage.repository import open_repository
from backup.stages import Stage, build_stages
from backup.inventory import inventory
from backup.storage.file import FileRepository
tmp = Path(tempfile.mkdtemp())
M = type("M", (ListingMachine,), {"spool_root": staticmethod(lambda: str(tmp))})
M.make_stages = staticmethod(lambda: [(n, open_repository((tmp / n).as_uri())) for n in ("primary","replica-1")])
m = M()
m.cut("snapshot")
for n in (10, 2000):
    while m.clock < n: m.cut("segment")
    m.ship(0, None)
    stages = [Stage("spool", m.spool), Stage("primary", m.targets[0][1])]
    best = min((lambda t: (inventory(stages, KEY), time.perf_counter()-t)[1])(time.perf_counter()) for _ in range(5))
    print(n, round(best, 4))
pr = cProfile.Profile(); pr.enable(); inventory(stages, KEY); pr.disable()
pstats.Stats(pr).sort_stats("tottime").print_stats(8)
