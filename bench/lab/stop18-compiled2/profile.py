"""py-spy profile of our server (1 worker) under wrk for one portal query:
  PYTHONPATH=. .venv/bin/python /work/notes/compiled2-scripts/profile.py QUERY SECONDS OUT"""
import subprocess
import sys

from bench import portal
from bench.cluster import seeded_database, start_cluster
from bench.compare import _population
from bench.cpu_ratio import _listener
from bench.server import ours

name, seconds, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
db = seeded_database(start_cluster(), 1_000_000)
population = _population(db.url, 1_000_000)
with ours(db.url, workers=1) as url:
    pid = _listener(url)
    spy = subprocess.Popen([".venv/bin/py-spy", "record", "-r", "200", "-d", str(seconds + 2),
                            "-f", "raw", "-o", out, "-p", str(pid)])
    portal.measure_one("compiled", url, name, portal.ours_requests, population, seconds, 16,
                       threads=1)
    spy.wait()
