"""Backend CPU seconds of candidate image queries (server-side COPY TO /dev/null), interleaved, min of R.
  .venv/bin/python bench/lab/stop20-cutimg/probe.py URL SNAPSHOT R"""
import asyncio, os, sys
import asyncpg

TICK = os.sysconf("SC_CLK_TCK")
W = "c.txid >= pg_snapshot_xmin('{s}') AND NOT pg_visible_in_snapshot(c.txid, '{s}') AND c.table_name = 'doses'"
CT = "coalesce(CASE WHEN current_setting('track_commit_timestamp')::boolean THEN pg_xact_commit_timestamp(c.txid::xid) END, c.captured_at)"
TYPED = "id bigint, recipient_id bigint, dose_number smallint, vaccine_code text, lot_number text, administered_on date, center_id int, next_due_on date, recorded_by text, created_at timestamptz, updated_at timestamptz"
TEXT = ", ".join(f"{c.split()[0]} text" for c in TYPED.split(", "))
SW = W.replace(" AND c.table_name = 'doses'", "")
Q = {
    "summary": "SELECT count(*), min(position), max(position), array_agg(DISTINCT table_name), min(" + CT + "), max(" + CT + ") FROM vaxvault_backup.changes c WHERE {sw}",
    "summary_g": "SELECT sum(n), min(f), max(l), array_agg(DISTINCT t), min(ct), max(ct) FROM (SELECT c.txid, c.captured_at, c.table_name t, count(*) n, min(position) f, max(position) l, " + CT + " ct FROM vaxvault_backup.changes c WHERE {sw} GROUP BY c.txid, c.captured_at, c.table_name) s",
    "summary_g2": "SELECT sum(n), min(f), max(l), array_agg(DISTINCT t), min(ct), max(ct) FROM (SELECT c.txid, c.table_name t, count(*) n, min(position) f, max(position) l, coalesce(CASE WHEN current_setting('track_commit_timestamp')::boolean THEN pg_xact_commit_timestamp(c.txid::xid) END, min(c.captured_at)) ct FROM vaxvault_backup.changes c WHERE {sw} GROUP BY c.txid, c.table_name) s",
    "distinct": "SELECT DISTINCT table_name FROM vaxvault_backup.changes c WHERE {sw}",
    "scan": "SELECT c.position, c.op::text FROM vaxvault_backup.changes c WHERE {w} ORDER BY c.position",
    "scan_ct": "SELECT c.position, " + CT + ", c.op::text FROM vaxvault_backup.changes c WHERE {w} ORDER BY c.position",
    "populate": "SELECT c.position, " + CT + ", c.op::text, r.* FROM vaxvault_backup.changes c LEFT JOIN LATERAL json_populate_record(NULL::public.doses, coalesce(c.new, c.key)) r ON true WHERE {w} ORDER BY c.position",
    "to_typed": "SELECT c.position, " + CT + ", c.op::text, r.* FROM vaxvault_backup.changes c LEFT JOIN LATERAL json_to_record(coalesce(c.new, c.key)) r(" + TYPED + ") ON true WHERE {w} ORDER BY c.position",
    "to_text": "SELECT c.position, " + CT + ", c.op::text, r.* FROM vaxvault_backup.changes c LEFT JOIN LATERAL json_to_record(coalesce(c.new, c.key)) r(" + TEXT + ") ON true WHERE {w} ORDER BY c.position",
    "to_text_noct": "SELECT c.position, c.captured_at, c.op::text, r.* FROM vaxvault_backup.changes c LEFT JOIN LATERAL json_to_record(coalesce(c.new, c.key)) r(" + TEXT + ") ON true WHERE {w} ORDER BY c.position",
    "to_text_ctjson": "SELECT c.position, to_json(" + CT + ")::text, c.op::text, r.* FROM vaxvault_backup.changes c LEFT JOIN LATERAL json_to_record(coalesce(c.new, c.key)) r(" + TEXT + ") ON true WHERE {w} ORDER BY c.position",
    "jsonb_text": "SELECT c.position, " + CT + ", c.op::text, r.* FROM vaxvault_backup.changes c LEFT JOIN LATERAL jsonb_to_record(coalesce(c.new, c.key)::jsonb) r(" + TEXT + ") ON true WHERE {w} ORDER BY c.position",
    "lines_concat": "SELECT concat('{{\"position\":', position, ',\"txid\":', txid, ',\"committed_at\":', to_json(" + CT + "), ',\"table\":', to_json(table_name), ',\"op\":\"', op, '\",\"key\":', coalesce(key::text, 'null'), ',\"old\":', coalesce(old::text, 'null'), ',\"new\":', coalesce(new::text, 'null'), '}}') FROM vaxvault_backup.changes c WHERE {sw} ORDER BY position",
    "lines_noct": "SELECT '{{\"position\":' || position || ',\"txid\":' || txid::text || ',\"table\":' || to_json(table_name)::text || ',\"op\":\"' || op::text || '\",\"key\":' || coalesce(key::text, 'null') || ',\"old\":' || coalesce(old::text, 'null') || ',\"new\":' || coalesce(new::text, 'null') || '}}' FROM vaxvault_backup.changes c WHERE {sw} ORDER BY position",
    "lines": "SELECT '{{\"position\":' || position || ',\"txid\":' || txid::text || ',\"committed_at\":' || to_json(" + CT + ")::text || ',\"table\":' || to_json(table_name)::text || ',\"op\":\"' || op::text || '\",\"key\":' || coalesce(key::text, 'null') || ',\"old\":' || coalesce(old::text, 'null') || ',\"new\":' || coalesce(new::text, 'null') || '}}' FROM vaxvault_backup.changes c WHERE {w} ORDER BY position",
}
Q["lines"] = Q["lines"].replace("{w}", "{sw}")


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


async def main(url, snap, rounds, names):
    conn = await asyncpg.connect(url)
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    await conn.execute("set enable_sort=off; set enable_bitmapscan=off; set max_parallel_workers_per_gather=0; set jit=off")
    best = {}
    for _ in range(rounds):
        for name in names:
            sql = Q[name].format(w=W.format(s=snap), sw=SW.format(s=snap))
            c0 = cpu(pid)
            await conn.execute(f"COPY ({sql}) TO '/dev/null'")
            if name.startswith("summary"): print(await conn.fetch(sql))
            c = cpu(pid) - c0
            best.setdefault(name, []).append(c)
    for name, v in best.items():
        print(f"{name:12s} min {min(v):.2f} all {' '.join(f'{x:.2f}' for x in v)}")
    print("load", os.getloadavg()[0])

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",") if len(sys.argv) > 4 else list(Q)))
