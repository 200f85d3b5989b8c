"""Hand-cut variants of the compiled statements' audit part, run by variants.py:
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-portal/audit_variants.py URL NAME ROUNDS VARIANT...
rawaudit: the audit json carries the ids/fields arrays as gathered (duplicates, any order): the
sort and DISTINCT would move to the batch INSERT (executor start-up once per batch)."""
import asyncio
import runpy

IDS = "ARRAY(SELECT DISTINCT u FROM unnest(q.ids) u ORDER BY u)"
FIELDS = "ARRAY(SELECT DISTINCT u COLLATE \"C\" FROM unnest(q.f) u ORDER BY 1)"


def rawaudit(sql: str) -> str:
    assert IDS in sql and FIELDS in sql
    return sql.replace(IDS, "q.ids").replace(FIELDS, "q.f")


mod = runpy.run_path("bench/lab/stop19-compiled3/variants.py", run_name="lib")
mod["VARIANTS"].update({"rawaudit": ("api", rawaudit)})
asyncio.run(mod["main"]())
