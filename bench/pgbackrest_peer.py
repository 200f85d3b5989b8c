"""pgBackRest as a second peer of `restore full`: a physical backup of a cluster holding only the
registry, restored into an empty data directory, started (WAL replayed from the archive),
migrated (nothing to do) and served until /readyz answers.

pgbackrest comes from Debian (installed on first use, like wrk); where apt-get cannot provide it
the result says so.
The cluster runs as the same system user as the bench cluster, and so does pgbackrest.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from api.embedded_postgres import EmbeddedPostgres, free_port
from bench import debian
from bench.cluster import CACHE, admin
from bench.process import Measured, run_pipeline
from bench.progress import say

ROOT = CACHE / "pgbackrest"
STANZA = "bench"


def available() -> bool:
    """Whether pgbackrest is on PATH, installed from Debian first when it is not."""
    try:
        debian.ensure("pgbackrest")
    except debian.ToolMissing as exc:
        say(str(exc))
        return False
    return True


def _as_user(cluster: EmbeddedPostgres, *command: str) -> list[str]:
    return ["runuser", "-u", cluster.user, "--", *command] if cluster.user else list(command)


def _owned(cluster: EmbeddedPostgres, *paths: Path) -> None:
    for path in paths:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if cluster.user:
            shutil.chown(path, cluster.user, cluster.user)


# lz4 for the disaster bench (restore speed is what it measures); zstd level 3 beside our full
# snapshot, which compresses with zstd level 3 too.
FOR_RESTORE = "compress-type=lz4\n"
LIKE_OURS = "compress-type=zst\ncompress-level=3\n"


def version() -> str:
    return subprocess.run(["pgbackrest", "version"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _config(cluster: EmbeddedPostgres, data: Path, port: int, compression: str) -> Path:
    config = ROOT / "pgbackrest.conf"
    config.write_text(
        "[global]\n"
        f"repo1-path={ROOT / 'repo'}\nlog-path={ROOT / 'log'}\nlock-path={ROOT / 'lock'}\n"
        f"{compression}process-max=2\nstart-fast=y\nlog-level-console=warn\n"
        f"[{STANZA}]\npg1-path={data}\npg1-socket-path={ROOT / 'sock'}\npg1-port={port}\n")
    if cluster.user:
        shutil.chown(config, cluster.user, cluster.user)
    return config


def prepare(dump: Path) -> tuple[EmbeddedPostgres, Path]:
    """A cluster with the dump restored as database `registry`, archived and fully backed up
    by pgBackRest; stopped afterwards (the lost server). Returns it and the config file."""
    source, config, _ = full_backup(dump, FOR_RESTORE)
    return source, config


def full_backup(dump: Path, compression: str) -> tuple[EmbeddedPostgres, Path, Measured]:
    """As prepare, and the measured `pgbackrest backup --type=full` (the cluster is stopped)."""
    source, config = _new_source(compression)
    source.initialise()
    _archive_to_repository(source, config)
    source.start()
    # A dump carries grants to the API role but not the role (that is pg_dumpall --roles-only).
    admin(source.url(), 'CREATE DATABASE "registry"', "CREATE ROLE vaxvault_api NOLOGIN NOINHERIT")
    run_pipeline([[str(source.bindir / "pg_restore"), "-j2", "--no-owner", "-d", source.url("registry"),
                   str(dump)]])
    return source, config, _measured_full_backup(source, config)


def full_backup_of(bench: EmbeddedPostgres, database: str, compression: str
                   ) -> tuple[EmbeddedPostgres, Path, Measured]:
    """As full_backup, but the cluster is a physical copy of the running bench cluster
    (pg_basebackup) keeping only `database`, renamed `registry`: at 10M recipients this takes a
    minute or two where restoring a dump into a new cluster took ~25."""
    source, config = _new_source(compression)
    source.root.mkdir(parents=True, exist_ok=True)
    source.data_dir.mkdir(mode=0o700)
    source.log_file.touch()
    _owned(source, source.data_dir)
    if source.user:
        shutil.chown(source.log_file, source.user, source.user)
    say(f"pgbackrest's cluster: pg_basebackup of the bench cluster, keeping {database}")
    run_pipeline([_as_user(source, str(source.bindir / "pg_basebackup"), "-D", str(source.data_dir),
                           "-d", bench.url(), "-X", "stream", "-c", "fast")])
    _archive_to_repository(source, config)
    source.start()
    others = admin(source.url(), "SELECT string_agg(quote_ident(datname), ' ') FROM pg_database "
                                 f"WHERE NOT datistemplate AND datname NOT IN ('postgres', '{database}')")
    for name in str(others or "").split():
        admin(source.url(), f"DROP DATABASE {name} WITH (FORCE)")
    admin(source.url(), f'ALTER DATABASE "{database}" RENAME TO "registry"', "CHECKPOINT")
    return source, config, _measured_full_backup(source, config)


def _new_source(compression: str) -> tuple[EmbeddedPostgres, Path]:
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    source = EmbeddedPostgres(ROOT / "source", port=free_port())
    _owned(source, ROOT / "repo", ROOT / "log", ROOT / "lock", ROOT / "sock")
    return source, _config(source, source.data_dir, source.port or 0, compression)


def _archive_to_repository(source: EmbeddedPostgres, config: Path) -> None:
    with open(source.data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
        conf.write(f"unix_socket_directories = '{ROOT / 'sock'}'\narchive_mode = on\n"
                   f"archive_command = 'pgbackrest --config={config} --stanza={STANZA} archive-push %p'\n")


def _measured_full_backup(source: EmbeddedPostgres, config: Path) -> Measured:
    run_pipeline([_as_user(source, "pgbackrest", f"--config={config}", f"--stanza={STANZA}",
                           "stanza-create")])
    backup = run_pipeline([_as_user(source, "pgbackrest", f"--config={config}", f"--stanza={STANZA}",
                                    "--type=full", "backup")])
    say(f"pgbackrest backup --type=full: {backup.seconds} s")
    source.stop()
    return backup


def backup_bytes() -> int:
    """Bytes of the backup sets in the repository (not the WAL archive, which also holds the
    WAL of loading the dump into the cluster)."""
    return sum(f.stat().st_size for f in (ROOT / "repo" / "backup").rglob("*") if f.is_file())


def restore_to_running(source: EmbeddedPostgres, config: Path) -> tuple[str, float, float, EmbeddedPostgres]:
    """Restore into an empty data directory and start it; (registry URL, restore s, start s, cluster)."""
    target = EmbeddedPostgres(ROOT / "restored", port=free_port())
    shutil.rmtree(target.root, ignore_errors=True)
    target.root.mkdir(parents=True)
    _owned(source, target.data_dir)
    restored = run_pipeline([_as_user(source, "pgbackrest", f"--config={config}", f"--stanza={STANZA}",
                                      f"--pg1-path={target.data_dir}", "restore")])
    started = time.perf_counter()
    log = target.root / "postgres.log"
    log.touch()
    if source.user:
        shutil.chown(log, source.user, source.user)
    subprocess.run(_as_user(source, str(source.bindir / "pg_ctl"), "-D", str(target.data_dir), "-l", str(log),
                            "-w", "-t", "600", "-o", f"-p {target.port} -c archive_mode=off", "start"),
                   check=True, capture_output=True)
    # pg_ctl -w returns once connections are accepted; recovery ends with the promotion.
    while str(admin(target.url(), "SELECT pg_is_in_recovery()")) == "True":
        time.sleep(0.05)
    return target.url("registry"), restored.seconds, round(time.perf_counter() - started, 2), target
