"""Print the compiled statement (and args) of a portal query:
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-compiled3/show_sql.py NAME RID CENTER"""
import runpy
import sys

from api.compiled.compiler import Compiler
from api.schema import build_schema

mod = runpy.run_path("bench/lab/stop18-compiled2/stmt_cpu.py", run_name="lib")
compiler = Compiler(build_schema(production=True), production=True)
sql, args = mod["statement"](compiler, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
print(sql)
print(args)
