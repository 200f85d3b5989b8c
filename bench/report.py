"""Results: the JSON file per run and BENCHMARKS.md, rendered from that JSON alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCHMARKS = ROOT / "BENCHMARKS.md"

QUERY_TITLES = {
    "districts": "districts (reference list, baseline)",
    "recipient_with_doses": "one recipient with doses",
    "center_latest_doses": "a center's latest 50 doses with recipients",
    "coverage_by_district": "coverage by district",
}


def write_results(results: dict[str, Any], name: str, directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    return path


def _ratio(ours: float | None, peer: float | None) -> str:
    if not ours or not peer:
        return "-"
    return f"{ours / peer:.2f}x"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _graphql(size: dict[str, Any]) -> list[str]:
    by_key = {(r["query"], r["side"]): r for r in size["graphql"]}
    sides = sorted({r["side"] for r in size["graphql"]}, key=lambda s: (s != "ours", s))
    lines = ["| query | side | req/s | p50 ms | p99 ms | bad responses | req/s vs PostGraphile |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for query, title in QUERY_TITLES.items():
        peer = by_key.get((query, "postgraphile"))
        peer_rps = peer["load"]["requests_per_s"] if peer and peer["load"] else None
        for side in sides:
            row = by_key.get((query, side))
            if row is None:
                continue
            if not row["available"]:
                lines.append(f"| {title} | {side} | n/a | | | | ({_cell(row['note'])}) |")
                continue
            load = row["load"]
            if load["requests"] == 0:
                lines.append(f"| {title} | {side} | 0 | | | {load['socket_errors']} | (no answer "
                             "within wrk's 10 s timeout) |")
                continue
            lines.append(
                f"| {title} | {side} | {_num(load['requests_per_s'])} | {_num(load['p50_ms'], 2)} | "
                f"{_num(load['p99_ms'], 2)} | {load['bad_responses'] + load['socket_errors']} | "
                f"{'1.00x' if side == 'postgraphile' else _ratio(load['requests_per_s'], peer_rps)} |")
    return lines


def _snapshots(size: dict[str, Any]) -> list[str]:
    rows = size["snapshot"]
    base = next((r for r in rows if r["tool"] == "pg_dump -Fc"), None)
    lines = ["| tool | seconds | bytes | peak memory MiB | time vs pg_dump -Fc | bytes vs pg_dump -Fc |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        if not row["available"]:
            lines.append(f"| {_cell(row['tool'])} | n/a | | | | ({_cell(row['note'])}) |")
            continue
        lines.append(
            f"| {_cell(row['tool'])} | {_num(row['seconds'], 2)} | {_num(row['bytes'])} | "
            f"{_num(row['peak_rss_mib'])} | {_ratio(row['seconds'], base and base['seconds'])} | "
            f"{_ratio(row['bytes'], base and base['bytes'])} |")
    lines += [f"\n{_cell(row['tool'])}: {_cell(row['note'])}." for row in rows
              if row["available"] and row.get("note")]
    return lines


def _restores(size: dict[str, Any]) -> list[str]:
    peer = next((r for r in size["restore"] if r["tool"].startswith("pg_restore")), None)
    lines = ["| operation | seconds | time vs pg_restore | peak memory MiB | note |",
             "|---|---:|---:|---:|---|"]
    for row in size["restore"]:
        seconds = _num(row.get("seconds"), 2) if row["available"] else "n/a"
        ratio = _ratio(row.get("seconds"), peer and peer["seconds"]) if row["available"] else "-"
        lines.append(f"| {_cell(row['tool'])} | {seconds} | {ratio} | "
                     f"{_num(row.get('peak_rss_mib'))} | {_cell(row.get('note', ''))} |")
    return lines


def _writes(size: dict[str, Any]) -> list[str]:
    lines = ["| change capture | inserts/s | inserts | note |", "|---|---:|---:|---|"]
    for row in size["writes"]:
        rate = _num(row["inserts_per_s"]) if row["available"] else "n/a"
        lines.append(f"| {'on' if row['capture'] else 'off'} | {rate} | {_num(row['inserts'])} | "
                     f"{row['note']} |")
    return lines


def _measured(size: dict[str, Any], part: str, table: Any) -> list[str]:
    """The part's table, or a line saying the run left it out (`python -m bench --only`)."""
    if size.get(part):
        return list(table(size))
    return ["Not measured in this run (`--only` left this part out)."]


def _growth(results: dict[str, Any]) -> list[str]:
    lines = ["| recipients | doses | database MiB | pg_dump -Fc s | recipient+doses req/s (ours / peer) "
             "| center latest 50 req/s (ours / peer) | coverage req/s (ours / peer) |",
             "|---:|---:|---:|---:|---|---|---|"]
    for size in results["sizes"]:
        rps = {(r["query"], r["side"]): (r["load"]["requests_per_s"] if r["load"] else None)
               for r in size["graphql"]}
        dump = next((r["seconds"] for r in size["snapshot"] if r["tool"] == "pg_dump -Fc"), None)
        cells = [f"{_num(rps.get((q, 'ours')))} / {_num(rps.get((q, 'postgraphile')))}"
                 for q in ("recipient_with_doses", "center_latest_doses", "coverage_by_district")]
        lines.append(f"| {size['recipients']:,} | {size['doses']:,} | "
                     f"{size['database_bytes'] / 2**20:,.0f} | {_num(dump, 2)} | {' | '.join(cells)} |")
    return lines


def _operations(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(section, tool) of every backup and restore figure, in the order the run measured them."""
    seen: list[tuple[str, str]] = []
    for size in results["sizes"]:
        for section in ("snapshot", "restore"):
            for row in size.get(section, []):
                if (section, row["tool"]) not in seen:
                    seen.append((section, row["tool"]))
    return seen


def _figure(size: dict[str, Any], section: str, tool: str) -> dict[str, Any] | None:
    row = next((r for r in size.get(section, []) if r["tool"] == tool), None)
    return row if row and row["available"] and row.get("seconds") else None


def _backup_growth(results: dict[str, Any]) -> list[str]:
    """Every backup and restore figure at every size: seconds and peak memory, and how much
    the time grew from the previous size to the largest."""
    sizes = [size for size in results["sizes"] if size.get("snapshot") or size.get("restore")]
    if not sizes:
        return []
    header = " | ".join(f"{size['recipients']:,}: s / peak MiB" for size in sizes)
    grow = (f"time {sizes[-1]['recipients'] // sizes[-2]['recipients']}x size"
            if len(sizes) > 1 and sizes[-2]["recipients"] else "")
    lines = [f"| operation | {header} |" + (f" {grow} |" if grow else ""),
             "|---|" + "---:|" * len(sizes) + ("---:|" if grow else "")]
    for section, tool in _operations(results):
        figures = [_figure(size, section, tool) for size in sizes]
        cells = [f"{_num(f['seconds'], 2)} / {_num(f.get('peak_rss_mib'), 0)}" if f else "-"
                 for f in figures]
        ratio = ""
        if grow:
            last, before = figures[-1], figures[-2]
            ratio = f" {_ratio(last and last['seconds'], before and before['seconds'])} |"
        lines.append(f"| {_cell(tool)} | {' | '.join(cells)} |{ratio}")
    loads = [f"{size['recipients']:,}: {size['load_average'][0]:.1f}" for size in sizes
             if size.get("load_average")]
    if loads:
        lines += ["", "Load average (1 min) when each size finished, on "
                      f"{results['machine']['cores']} cores: {'; '.join(loads)}."]
    return lines


def _settings(machine: dict[str, Any]) -> str:
    """The bench cluster's own settings (bench.cluster.SETTINGS) when the results recorded them."""
    settings = machine.get("cluster_settings") or {}
    return "".join(f", {name} {value}" for name, value in settings.items())


def render(results: dict[str, Any], results_path: str, growth_picture: str | None = None) -> str:
    """BENCHMARKS.md; `growth_picture` is the path (relative to the repository) of the cost
    growth PNG drawn from the same results, shown in section 5 when given."""
    # A run may measure the largest size first (so a long run cut short still has it).
    results = {**results, "sizes": sorted(results["sizes"], key=lambda size: size["recipients"])}
    machine = results["machine"]
    load = results["load"]
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`.venv/bin/python -m bench`) from "
        f"`{results_path}`; do not edit by hand. Every figure below was measured in one run, each "
        "side next to its peer on the same database and machine.",
        "",
        f"Run: {results['started_at']} to {results['finished_at']} (`{results['command']}`).",
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores; memory {machine['memory_mib']:,} MiB; "
        f"kernel {machine['kernel']}; shared with other work while measured (numbers are noisy).",
        f"- {machine['postgresql']} (durable cluster: fsync on{_settings(machine)}), {machine['pg_dump']}, "
        f"{machine['zstd']}",
        f"- wrk: {machine['wrk']}; node {machine['node']}; PostGraphile {machine['postgraphile']}; "
        f"Python {machine['python']}",
        "",
        "```",
        machine["free"],
        "```",
        "",
        "## How to run",
        "",
        "```",
        "make bench                         # 100k and 1M recipients; writes results + this file",
        ".venv/bin/python -m bench --quick  # 100k only, short loads; prints the report",
        ".venv/bin/python -m bench --sizes 100000,1000000,10000000   # add 10M where disk allows",
        ".venv/bin/python -m bench --only backup --sizes 100000,1000000,10000000"
        "   # sections 2, 3, 5 only",
        "```",
        "",
        "Everything expensive is cached under `bench/.cache/` (git-ignored): the PostgreSQL cluster "
        "with the seeded databases (`vaxvault db seed --recipients N --seed 1`, a marker file per "
        "database), PostGraphile v4 from npm; wrk, pgBackRest and GNU time come from Debian "
        "(installed by the bench with apt-get when missing).",
        "",
        "## 1. GraphQL: the portal queries",
        "",
        f"wrk, {load['threads']} threads, {load['connections']} connections, {load['seconds']} s per "
        "query and side (coverage: 8 connections on both sides), requests rotating over 400 random "
        "ids. Ours: `vaxvault serve` (one uvicorn "
        "worker, pool 10) with scope and audit on, as admin (recipient), center_staff of the "
        "center (latest doses) and auditor (coverage). PostGraphile v4: one node process, pool 10, "
        "connected as the superuser, no permission logic; coverage through a SQL function "
        "(`bench_peer.coverage_by_district`, the same GROUP BY) since v4 has no aggregates. Ours "
        "answers coverage from a per-process cache of 5 s (by role and scope), so its figure is "
        "mostly cache hits; PostGraphile computes every request. A response with `errors` or a "
        "non-200 status counts as bad.",
        "",
    ]
    for size in results["sizes"]:
        out += [f"### {size['recipients']:,} recipients", "", *_measured(size, "graphql", _graphql), ""]
    out += ["## 2. Full snapshot vs pg_dump", "",
            "Wall time, bytes written and peak resident memory (sum over the processes of a "
            "pipeline, each process's own peak as GNU time reports it).", ""]
    for size in results["sizes"]:
        out += [f"### {size['recipients']:,} recipients", "", *_measured(size, "snapshot", _snapshots), ""]
    out += ["## 3. Restore of lost rows vs pg_restore", "",
            "On a scratch copy that `backup run --full` just snapshotted: T is taken, then one UPDATE "
            "sets administered_on to NULL for the lost set of dose-1 rows (266,561 rows at 1M "
            "recipients and above, scaled with the table below that: 26,656 at 100k), an incremental "
            "run ships the damage, and `vaxvault restore records --as-of T --table doses --where "
            "\"dose_number = 1 AND id <= K\"` puts the rows back (with `--replan`: it plans again "
            "rather than reuse the dry run's saved plan); the note checks that none is still NULL. "
            "Then the same incident again, restored after its dry run, reusing its plan. The peer "
            "is `pg_restore` of the whole `pg_dump -Fc` file into an empty scratch database, which "
            "is what an operator without record-level restore would do first (and "
            "would then still have to copy the rows across by hand).", ""]
    for size in results["sizes"]:
        out += [f"### {size['recipients']:,} recipients", "", *_measured(size, "restore", _restores), ""]
    out += ["## 4. Change-capture write overhead", "",
            f"8 clients, one INSERT into doses per committed transaction, {load['write_seconds']} s, "
            "on a scratch copy of the seeded database.", ""]
    for size in results["sizes"]:
        out += [f"### {size['recipients']:,} recipients", "", *_measured(size, "writes", _writes), ""]
    out += ["## 5. How cost grows", ""]
    if growth_picture:
        out += [f"![Seconds and peak memory against recipients, log-log, ours and peers]"
                f"({growth_picture})", ""]
    if any(size["graphql"] for size in results["sizes"]):
        out += [*_growth(results), ""]
    backup_growth = _backup_growth(results)
    if backup_growth:
        out += ["Backup and restore, every figure of sections 2 and 3 at every size (wall seconds "
                "/ peak resident memory of the command's processes, from GNU time; the lost set is the same "
                "266,561 rows from 1M up):", "", *backup_growth, ""]
    out += [
        "## Reliability suite",
        "",
        "`tests/reliability/` runs in the normal test suite (`make test`), so its load lasts 10 s by "
        "default rather than the issue's 60 s; `VAXVAULT_RELIABILITY_SECONDS=60 .venv/bin/pytest "
        "tests/reliability` is the soak run. It checks: sustained load on `vaxvault serve` (zero "
        "5xx, pool never above its size and empty after shutdown, RSS growth under 10%); "
        "PostgreSQL stopped and started under load (failures are fast and readable, recovery "
        "without a restart of the API); an exhausted pool (bounded waits); bad tokens (tampered, "
        "`alg: none`, wrong key or algorithm, expired, future `nbf`) -> 401; malformed bodies, "
        "GraphQL, ids and dates, SQL-injection strings in every string argument and hypothesis "
        "over filters -> clear errors, no 5xx, registry unchanged; no log line with a national ID "
        "or phone; restore through a faulty S3 proxy (500/503, drops, latency, torn bodies) is "
        "all or nothing; kill -9 of restore and backup at seeded random moments; hypothesis over "
        "manifests.",
        "",
    ]
    notes = list(results.get("notes") or [])
    if not any(r["side"] == "ours (audit off)" for size in results["sizes"] for r in size["graphql"]):
        notes.append("Ours with audit off is not measured: this build has no setting that turns "
                     "the audit of personal-data reads off.")
    if max(size["recipients"] for size in results["sizes"]) < 10_000_000:
        notes.append("10M recipients (the 10x table with the same lost set) is not in this run: "
                     "`--sizes 100000,1000000,10000000` adds it where the disk allows "
                     "(about 7.5 GB and ~20 min of seeding here).")
    if not growth_picture:
        notes.append("No picture of cost growth: it needs matplotlib (`pip install -e '.[bench]'`) "
                     "and at least two sizes; the tables carry the figures.")
    notes.append("The machine is shared with other jobs while the benchmark runs, so absolute "
                 "figures are noisy; each pair of sides ran back to back on the same data, and "
                 "the write rounds are interleaved, to keep ratios meaningful.")
    if notes:
        out += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    return _keep_hand_written(_keep_unmeasured(_keep_portal_section("\n".join(out)), results))


# Sections a run may leave out (`--only`): the current file's version stays, marked as such.
PART_SECTIONS = {"graphql": "## 1. GraphQL: the portal queries",
                 "writes": "## 4. Change-capture write overhead"}
KEPT_NOTE = ("_Kept from an earlier run: the run named at the top left this part out "
             "(`python -m bench --only ...`)._")


def _keep_unmeasured(generated: str, results: dict[str, Any]) -> str:
    current = dict(_sections(BENCHMARKS.read_text() if BENCHMARKS.exists() else ""))
    sections = _sections(generated)
    out = []
    for heading, text in sections:
        part = next((p for p, h in PART_SECTIONS.items() if h == heading), None)
        if part and not any(size.get(part) for size in results["sizes"]) and heading in current:
            kept = current[heading]
            if KEPT_NOTE not in kept:
                title, _, rest = kept.partition("\n")
                kept = f"{title}\n\n{KEPT_NOTE}\n{rest}"
            text = kept
        out.append(text)
    return "".join(out)


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading line, whole section text) for each `## ` section; the text before the first
    heading comes with an empty heading."""
    parts: list[tuple[str, str]] = []
    heading, lines = "", []
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            parts.append((heading, "".join(lines)))
            heading, lines = line.strip(), []
        lines.append(line)
    parts.append((heading, "".join(lines)))
    return parts


def _keep_hand_written(generated: str) -> str:
    """Keep every section of the current BENCHMARKS.md this renderer does not write (the ones
    people add by hand, and bench.compare's portal section), each after the generated section
    it followed; one whose anchor is gone goes at the end."""
    current = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    if PORTAL_START in current and PORTAL_END in current:  # _keep_portal_section placed it
        head, rest = current.split(PORTAL_START, 1)
        current = head + rest.split(PORTAL_END, 1)[1]
    new = _sections(generated)
    ours = {heading for heading, _ in new}
    after: dict[str, list[str]] = {}
    anchor = ""
    for heading, text in _sections(current):
        if heading in ours:
            anchor = heading
        elif heading:
            after.setdefault(anchor if anchor in ours else "", []).append(text)
    if not after:
        return generated
    out: list[str] = []
    for heading, text in new:
        out.append(text)
        for kept in after.pop(heading, []) if heading else []:
            out.append(kept if out[-1].endswith("\n\n") else "\n" + kept)
    for orphans in after.values():  # anchored to nothing generated now
        out += ["\n" + kept for kept in orphans]
    return "".join(out).rstrip("\n") + "\n"


def _keep_portal_section(text: str) -> str:
    """`make bench` does not run bench.compare: keep the portal section it last wrote."""
    current = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    if PORTAL_START not in current or PORTAL_END not in current:
        return text
    section = PORTAL_START + current.split(PORTAL_START, 1)[1].split(PORTAL_END, 1)[0] + PORTAL_END
    marker = "## 2."
    return text.replace(marker, section + "\n\n" + marker, 1) if marker in text \
        else text + "\n" + section + "\n"


PORTAL_TITLES = {
    "recipient_with_doses": "recipient with doses, admin",
    "recipient_with_doses_staff": "recipient with doses, center staff",
    "center_latest_doses": "a center's latest 50 doses with recipients, center staff",
    "recipients_page_100": "a page of 100 recipients with doses, admin",
    "me_recipient": "`me` with doses, recipient",
}
PORTAL_START = "<!-- portal:start (python -m bench.compare) -->"
PORTAL_END = "<!-- portal:end -->"


def _load(row: dict[str, Any] | None) -> tuple[str, str, float | None]:
    if row is None or not row["available"]:
        return "n/a", "", None
    load = row["load"]
    if not load["requests_per_s"]:
        return "0", "every request over wrk's window", None
    return (f"{load['requests_per_s']:,.0f}", f"{load['p50_ms']:.0f} / {load['p99_ms']:.0f}",
            load["requests_per_s"])


def render_portal(results: dict[str, Any], results_path: str) -> str:
    """The compiled path next to the strawberry path and PostGraphile, from one results file."""
    load = results["load"]
    out = [PORTAL_START, "## 1b. The compiled read path (issue 10)", "",
           f"Generated by `{results['command']}` from {results_path} "
           f"({results['started_at']} to {results.get('finished_at', '?')}). wrk "
           f"{load['wrk_threads']} thread, {load['connections']} connections, "
           f"{load['seconds']} s per run; for each query the three sides ran back to back (the "
           "compiled side first, so on the coldest caches). "
           "Scope and audit on for both of our paths (the audit row is committed before the "
           "response). The machine was shared with other work while this ran: read the ratios, "
           "not the absolute figures."
           + (f" Load average (1 min) at start and end: {results['load_average'][0]:.1f} and "
              f"{results['load_average'][1]:.1f} on {machine_cores()} cores."
              if results.get("load_average") else ""), ""]
    for size in results["sizes"]:
        out += [f"### {size['recipients']:,} recipients", "",
                "| query | workers | compiled req/s | p50 / p99 ms | strawberry req/s | "
                "p50 / p99 ms | PostGraphile req/s | p50 / p99 ms | compiled vs PostGraphile | "
                "compiled vs strawberry |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for workers in (1, 2):
            for query, title in PORTAL_TITLES.items():
                same_run = [r for r in size["graphql"] if r["query"] == query
                            and r.get("workers") == workers]
                if not same_run:
                    continue
                by_side = {r["side"].split(",")[0]: r for r in same_run}
                c_rps, c_lat, c = _load(by_side.get("compiled"))
                s_rps, s_lat, s = _load(by_side.get("strawberry"))
                p_rps, p_lat, p = _load(by_side.get("postgraphile"))
                out.append(f"| {title} | {workers} | {c_rps} | {c_lat} | {s_rps} | {s_lat} | "
                           f"{p_rps} | {p_lat} | {_ratio(c, p)} | {_ratio(c, s)} |")
        out += ["", "Ceiling: what the compiled path sends for one request (the read statement: "
                    "principal, freezes, read, the audit row built; then that row's INSERT), each "
                    "committed by itself, run by pgbench "
                    f"-c{load['connections']} as the API role. The server commits the audit rows "
                    "of concurrent reads together, so it can pass this figure:", "",
                "| query | pgbench tps | compiled 1 worker | compiled 2 workers |",
                "|---|---:|---:|---:|"]
        for entry in size["ceiling"]:
            reached = []
            for workers in (1, 2):
                row = next((r for r in size["graphql"] if r["query"] == entry["query"]
                            and r["side"].startswith("compiled") and r.get("workers") == workers
                            and r["available"]), None)
                rps = row["load"]["requests_per_s"] if row else None
                reached.append(f"{rps / entry['tps']:.0%} of it" if rps else "-")
            out.append(f"| {PORTAL_TITLES[entry['query']]} | {entry['tps']:,.0f} | "
                       f"{reached[0]} | {reached[1]} |")
        memory = "; ".join(f"{k}: {', '.join(f'{v:.0f}' for v in vs)} MiB"
                           for k, vs in size.get("rss_mib", {}).items())
        out += ["", f"Resident memory of the server processes after the runs: {memory} "
                    "(with 2 workers: the supervisor, then each worker).", ""]
    out.append(PORTAL_END)
    return "\n".join(out)


def machine_cores() -> int:
    return os.cpu_count() or 1


def write_portal_section(results: dict[str, Any], results_path: str) -> None:
    """Replace (or add) the portal section of BENCHMARKS.md; the rest stays as generated."""
    section = render_portal(results, results_path)
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    if PORTAL_START in text and PORTAL_END in text:
        head, rest = text.split(PORTAL_START, 1)
        text = head + section + rest.split(PORTAL_END, 1)[1]
    else:
        marker = "## 2."
        text = text.replace(marker, section + "\n\n" + marker, 1) if marker in text \
            else text + "\n" + section + "\n"
    BENCHMARKS.write_text(text)
