"""pgbench scripts (the compiled statements, literals inlined) for me_recipient and
recipients_page_100 and the staff/admin recipient reads: writes NAME.sql files into DIR.

  PYTHONPATH=. .venv/bin/python pgbench_mix.py DIR RECIPIENTS
then e.g. pgbench -n -M prepared -c16 -j2 -T15 -f DIR/me_recipient.sql@10 -f DIR/recipients_page_100.sql@1
"""
import re
import runpy
import sys

from api.compiled.compiler import Compiler
from api.schema import build_schema
from bench.ceiling import _inline

out, recipients = sys.argv[1], int(sys.argv[2])
mod = runpy.run_path(__file__.replace("pgbench_mix.py", "stmt_cpu.py"), run_name="lib")
compiler = Compiler(build_schema(production=True), production=True)
RID = 987654321
for name in ["me_recipient", "recipients_page_100", "recipient_with_doses",
             "recipient_with_doses_staff", "center_latest_doses"]:
    sql, args = mod["statement"](compiler, name, RID, 87654321)
    body = _inline(sql, args)
    body = body.replace(f"'{RID}'", "(:id)::text").replace(str(RID), ":id")
    body = body.replace("'87654321'", "(:c)::text").replace("87654321", ":c")
    body = body.replace("HH24:MI:SS", 'HH24":"MI":"SS')
    if name == "recipients_page_100":
        # the cursor is base64 of ["recipient",id]: keep a fixed literal, vary nothing else
        pass
    open(f"{out}/{name}.sql", "w").write(
        f"\\set id random(1, {recipients - 200})\n\\set c random(1, 4000)\n{body};\n")
