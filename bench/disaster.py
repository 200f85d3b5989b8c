"""Time from an empty database to a ready API after a total loss: `vaxvault restore full` beside
`pg_restore -j2` of a `pg_dump -Fc` of the same registry, in the same run, rounds interleaved.

`python -m bench.disaster [--recipients N] [--rounds R] [--plain]`. Both sides start from an empty
database on the bench cluster and end when `vaxvault serve` answers /readyz 200 after
`vaxvault db migrate`. The source is a scratch copy of the cached seeded database with change
capture installed and one full snapshot in a file:// repository (on the same disk as the dump),
encrypted and authenticated with a fresh key as an operator's would be (--plain: no key).
The load average is recorded beside every side's run: the machine may be shared.
Writes bench/results/<date>-disaster-<machine>.json and prints a table.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from api.embedded_postgres import EmbeddedPostgres, free_port
from bench import machine, pgbackrest_peer
from bench.cluster import CACHE, admin, clone_database, drop_database, seeded_database, start_cluster
from bench.process import Measured, run_pipeline
from bench.progress import say
from bench.report import RESULTS
from bench.server import BENCH_JWT_SECRET, VAXVAULT

WORK = CACHE / "disaster"


@dataclass(frozen=True)
class Ready:
    """One side's way from an empty database to a ready API."""

    side: str
    load_seconds: float        # restore full / pg_restore
    migrate_seconds: float
    serve_seconds: float       # `vaxvault serve` started -> /readyz 200
    total_seconds: float
    peak_rss_mib: float        # of the load command (pg_restore: its processes together)
    load_average: float = 0.0  # 1-minute load average when the run ended
    # CPU seconds of the load step: of the load command (and its threads), and of the server
    # processes it used (backends and their parallel workers). Work, which a shared machine's
    # load stretches far less than wall time.
    client_cpu_seconds: float = 0.0
    server_cpu_seconds: float = 0.0


def _serve_until_ready(url: str) -> float:
    """Start `vaxvault serve` on `url`, wait for /readyz 200, stop it; the seconds it took."""
    port = free_port()
    env = {**os.environ, "VAXVAULT_DATABASE_URL": url, "VAXVAULT_JWT_SECRET": BENCH_JWT_SECRET,
           "VAXVAULT_ENV": "production"}
    started = time.perf_counter()
    with open(WORK / "serve.log", "ab") as log:
        proc = subprocess.Popen([str(VAXVAULT), "serve", "--port", str(port)], stdout=log,
                                stderr=subprocess.STDOUT, env=env)
        try:
            while proc.poll() is None and time.perf_counter() - started < 120:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        return round(time.perf_counter() - started, 2)
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            raise RuntimeError(f"vaxvault serve on {url} never became ready; see {WORK / 'serve.log'}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _server_cpu(cluster: EmbeddedPostgres) -> float:
    """CPU seconds of the server's exited processes (the postmaster reaps every backend)."""
    pid = (cluster.data_dir / "postmaster.pid").read_text().split()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime + cstime


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _until_no_sessions(cluster: EmbeddedPostgres, name: str) -> None:
    """Wait until the load's server sessions have exited (and so count in _server_cpu)."""
    while int(str(admin(cluster.url(), f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'"))):
        time.sleep(0.05)


def _to_ready(side: str, cluster: EmbeddedPostgres, name: str, load: list[str], env: dict[str, str]) -> Ready:
    admin(cluster.url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    url = cluster.url(name)
    try:
        server, client = _server_cpu(cluster), _children_cpu()
        started = time.perf_counter()
        loaded: Measured = run_pipeline([[part.replace("{url}", url) for part in load]], env=env)
        load_end = time.perf_counter()
        _until_no_sessions(cluster, name)
        client = round(_children_cpu() - client, 2)
        server = round(_server_cpu(cluster) - server, 2)
        started += time.perf_counter() - load_end  # the wait is the bench's, not the side's
        migrated = run_pipeline([[str(VAXVAULT), "db", "migrate"]], env={"VAXVAULT_DATABASE_URL": url})
        serve = _serve_until_ready(url)
        total = round(time.perf_counter() - started, 2)
    finally:
        drop_database(cluster, name)
    ready = Ready(side, loaded.seconds, migrated.seconds, serve, total, loaded.peak_rss_mib,
                  round(os.getloadavg()[0], 2), client, server)
    say(f"{side}: ready in {total} s (load {loaded.seconds} s, migrate {migrated.seconds} s, "
        f"serve {serve} s), peak {loaded.peak_rss_mib} MiB, load average {ready.load_average}, "
        f"load CPU {client} s client + {server} s server")
    return ready


def _pgbackrest_to_ready(source: EmbeddedPostgres, config: Path) -> Ready:
    """pgbackrest restore into an empty data directory, start, migrate, serve until ready."""
    started = time.perf_counter()
    url, restored, recovered, target = pgbackrest_peer.restore_to_running(source, config)
    try:
        migrated = run_pipeline([[str(VAXVAULT), "db", "migrate"]], env={"VAXVAULT_DATABASE_URL": url})
        serve = _serve_until_ready(url)
        total = round(time.perf_counter() - started, 2)
    finally:
        target.destroy()
    say(f"pgbackrest: ready in {total} s (restore {restored} s, start and recovery {recovered} s, "
        f"migrate {migrated.seconds} s, serve {serve} s)")
    return Ready("pgbackrest restore", round(restored + recovered, 2), migrated.seconds, serve, total, 0.0,
                 round(os.getloadavg()[0], 2))


def measure(recipients: int, rounds: int, pgbackrest: bool = True,
            encrypted: bool = True) -> dict[str, object]:
    cluster = start_cluster()
    WORK.mkdir(parents=True, exist_ok=True)
    db = seeded_database(cluster, recipients)
    source = f"bench_disaster_source_{recipients}"
    repository, spool = WORK / f"repo-{recipients}", WORK / f"spool-{recipients}"
    dump = WORK / f"{recipients}.dump"
    shutil.rmtree(repository, ignore_errors=True)
    shutil.rmtree(spool, ignore_errors=True)
    url = clone_database(cluster, db.name, source)
    keyed = {"VAXVAULT_BACKUP_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()} if encrypted else {}
    env = {"VAXVAULT_DATABASE_URL": url, "VAXVAULT_BACKUP_URL": repository.as_uri(),
           "VAXVAULT_BACKUP_SPOOL_DIR": str(spool), **keyed}
    try:
        run_pipeline([[str(VAXVAULT), "backup", "init"]], env=env)
        backup = run_pipeline([[str(VAXVAULT), "backup", "run", "--full"]], env=env)
        say(f"full backup {backup.seconds} s; pg_dump -Fc of the same database")
        dumped = run_pipeline([[str(cluster.bindir / "pg_dump"), "-Fc", "-f", str(dump), url]])
        rows = int(str(admin(url, "SELECT (SELECT count(*) FROM recipients) + (SELECT count(*) FROM doses)")))
    finally:
        drop_database(cluster, source)
    ours = [str(VAXVAULT), "restore", "full", "--as-of", "latest", "--target-url", "{url}"]
    peer = [str(cluster.bindir / "pg_restore"), "-j2", "--no-owner", "-d", "{url}", str(dump)]
    sides: dict[str, list[Ready]] = {"vaxvault restore full": [], "pg_restore -j2": []}
    physical = pgbackrest_peer.prepare(dump) if pgbackrest and pgbackrest_peer.available() else None
    # What any vaxvault command pays before it does anything (imports), on this machine now.
    startup = run_pipeline([[str(VAXVAULT), "restore", "full", "--help"]]).seconds
    for round_number in range(rounds):
        say(f"round {round_number + 1} of {rounds}")
        # Alternate which side goes first: the machine is shared and its load drifts.
        order = [("vaxvault restore full", ours), ("pg_restore -j2", peer)]
        for side, command in (order if round_number % 2 == 0 else order[::-1]):
            sides[side].append(_to_ready(side, cluster, f"bench_disaster_{round_number}", command,
                                         {"VAXVAULT_BACKUP_URL": repository.as_uri(), **keyed}))
        if physical is not None:
            sides.setdefault("pgbackrest restore", []).append(_pgbackrest_to_ready(*physical))
    dump.unlink(missing_ok=True)
    if physical is not None:
        physical[0].destroy()
    ratios = [o.total_seconds / p.total_seconds
              for o, p in zip(sides["vaxvault restore full"], sides["pg_restore -j2"], strict=True)]
    return {
        "recipients": recipients, "registry_rows": rows, "rounds": rounds, "encrypted": encrypted,
        "backup_full_seconds": backup.seconds, "pg_dump_seconds": dumped.seconds,
        "repository_bytes": sum(f.stat().st_size for f in repository.rglob("*") if f.is_file()),
        "sides": {side: [asdict(r) for r in runs] for side, runs in sides.items()},
        "median_total_seconds": {side: statistics.median(r.total_seconds for r in runs)
                                 for side, runs in sides.items()},
        "ratio_per_round": [round(r, 2) for r in ratios],
        "pgbackrest": "driven" if physical else "skipped (--no-pgbackrest) or not on PATH",
        "vaxvault_cli_startup_seconds": startup,
        "median_ratio": round(statistics.median(ratios), 2),
    }


def _table(result: dict[str, object]) -> str:
    lines = ["| side | round | load s | migrate s | serve s | total s | peak MiB | load avg | load CPU s |",
             "|---|---|---|---|---|---|---|---|---|"]
    sides = result["sides"]
    assert isinstance(sides, dict)
    for side, runs in sides.items():
        for index, run in enumerate(runs, 1):
            lines.append(f"| {side} | {index} | {run['load_seconds']} | {run['migrate_seconds']} | "
                         f"{run['serve_seconds']} | {run['total_seconds']} | {run['peak_rss_mib']} | "
                         f"{run['load_average']} | "
                         f"{run['client_cpu_seconds']} + {run['server_cpu_seconds']} |")
    lines.append(f"\nratio ours / pg_restore -j2 per round: {result['ratio_per_round']}, "
                 f"median {result['median_ratio']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.disaster", description=__doc__)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pgbackrest", action="store_true", help="skip the pgBackRest peer")
    parser.add_argument("--plain", action="store_true", help="an unencrypted repository (no key)")
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = measure(args.recipients, args.rounds, pgbackrest=not args.no_pgbackrest,
                     encrypted=not args.plain)
    record = {"started_at": started, "command": "python -m bench.disaster " + " ".join(argv),
              "machine": {"cpu": machine.cpu_model(), "cores": machine.cpu_count(),
                          "memory_mib": machine.memory_mib(),
                          "postgres_bin": str(EmbeddedPostgres(CACHE / "postgres").bindir),
                          "load_average_at_end": os.getloadavg()},
              "result": result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{started[:10]}-disaster-{args.recipients}-{machine.short_name()}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(_table(result))
    say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
