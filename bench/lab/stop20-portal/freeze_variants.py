"""Text variants of the compiled statements' district-freeze test, run by variants.py:
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-portal/freeze_variants.py URL NAME ROUNDS VARIANT...
intarr: pz carries the frozen districts as int[] once, each field asks `district_id = ANY(pz.fz)`;
nofrozen: the test replaced by false (the most any form of it could save)."""
import re
import runpy
import sys

PRED = re.compile(r"\(pz\.frozen_districts <> '' AND (\w+)\.district_id::text = "
                  r"ANY\(string_to_array\(pz\.frozen_districts, ','\)\)\)")
PZ = "(SELECT * FROM (\nSELECT set_config"
PZ_INT = "(SELECT *, string_to_array(b.frozen_districts, ',')::int[] AS fz FROM (\nSELECT set_config"


def intarr(sql: str) -> str:
    assert PZ in sql
    out = PRED.sub(r"(\1.district_id = ANY(pz.fz))", sql.replace(PZ, PZ_INT, 1))
    assert out != sql
    return out


def nofrozen(sql: str) -> str:
    out = PRED.sub("false", sql)
    assert out != sql
    return out


def intarr_guard(sql: str) -> str:
    assert PZ in sql
    return PRED.sub(r"(pz.fz <> '{}' AND \1.district_id = ANY(pz.fz))", sql.replace(PZ, PZ_INT, 1))


mod = runpy.run_path("bench/lab/stop19-compiled3/variants.py", run_name="lib")
mod["VARIANTS"].update({"intarr": ("api", intarr), "nofrozen": ("api", nofrozen),
                        "intarr-guard": ("api", intarr_guard)})
import asyncio  # noqa: E402
asyncio.run(mod["main"]())
