"""generic/custom plan counts of statements after 12 executions, per variant (as variants.py):
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-compiled3/plancount.py URL NAME VARIANT..."""
import asyncio, json, sys
import asyncpg


async def main() -> None:
    url, name = sys.argv[1], sys.argv[2]
    import runpy
    v = runpy.run_path("bench/lab/stop19-compiled3/variants.py", run_name="lib")
    mod = runpy.run_path("bench/lab/stop18-compiled2/stmt_cpu.py", run_name="lib")
    from api.compiled.compiler import Compiler
    from api.schema import build_schema
    compiler = Compiler(build_schema(production=True), production=True)
    for variant in sys.argv[3:]:
        if variant.startswith("file:"):
            stmts = [tuple(x) for x in json.load(open(variant[5:]))][:12]
        else:
            stmts = [mod["statement"](compiler, name, 1000 + 37 * i, 1 + i) for i in range(12)]
        c = await asyncpg.connect(url, server_settings={"role": "vaxvault_api"})
        for s, a in stmts:
            await c.fetchrow(s, *a)
        rows = await c.fetch("SELECT generic_plans, custom_plans FROM pg_prepared_statements")
        print(variant, [tuple(r) for r in rows])
        await c.close()

asyncio.run(main())
