"""A private PostgreSQL cluster in a directory: the embedded default for `vaxvault dev` and tests.

It uses the system's PostgreSQL server binaries when present and the ones shipped in the
`pgserver` wheel otherwise. PostgreSQL refuses to run as root, so under root the server runs as
an unprivileged system user (``postgres`` when it exists, else one created for the purpose).
It listens on 127.0.0.1 only, with no Unix socket, so deep directory paths do not matter.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from api.errors import EmbeddedPostgresError

SUPERUSER = "postgres"
FALLBACK_SYSTEM_USER = "vaxvault-pg"

# Settings every embedded cluster gets. track_commit_timestamp lets change capture date each
# change by its commit, which is what "as of T" means to an operator.
BASE_CONFIG = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "track_commit_timestamp": "on",
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "max_wal_size": "'2GB'",
    "log_min_messages": "warning",
}
# Throwaway clusters (tests) trade durability for speed.
THROWAWAY_CONFIG = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def find_bindir() -> Path:
    """Return the directory of PostgreSQL server binaries; raise if there is none."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    candidates.extend(Path(p) for p in versions)
    # Located without importing: importing pgserver has side effects we do not need.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise EmbeddedPostgresError(
        "no PostgreSQL server binaries found (looked for pg_config, /usr/lib/postgresql/*/bin "
        "and the pgserver wheel); install postgresql or set VAXVAULT_DATABASE_URL"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as_user() -> str | None:
    """The system user to run the server as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in (SUPERUSER, FALLBACK_SYSTEM_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
         FALLBACK_SYSTEM_USER],
        check=True, capture_output=True,
    )
    return FALLBACK_SYSTEM_USER


def _make_traversable(path: Path) -> None:
    """Let the server's user reach `path` through directories root created."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


@dataclass
class EmbeddedPostgres:
    """A cluster living in ``root`` (data in root/data, log in root/postgres.log)."""

    root: Path
    throwaway: bool = False
    port: int | None = None

    def __post_init__(self) -> None:
        self.root = self.root.absolute()
        self.bindir = find_bindir()
        self.user = _run_as_user()

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        if self.port is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not running")
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _cmd(self, name: str, *args: str) -> list[str]:
        command = [str(self.bindir / name), *args]
        return ["runuser", "-u", self.user, "--", *command] if self.user else command

    def _run(self, name: str, *args: str) -> str:
        result = subprocess.run(self._cmd(name, *args), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            tail = detail[-1] if detail else f"exit code {result.returncode}"
            raise EmbeddedPostgresError(f"{name} failed: {tail} (log: {self.log_file})")
        return result.stdout

    def _chown(self, path: Path) -> None:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def initialise(self) -> None:
        """Create the cluster unless it already exists."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.log_file.touch()
        if self.user:
            _make_traversable(self.root)
            self._chown(self.data_dir)
            self._chown(self.log_file)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C",
        )
        config = dict(BASE_CONFIG)
        if self.throwaway:
            config.update(THROWAWAY_CONFIG)
        with open(self.data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
            for key, value in config.items():
                conf.write(f"{key} = {value}\n")

    def running_port(self) -> int | None:
        """The port of a server already running on this data directory, if any."""
        return running_port(self.data_dir)

    def start(self) -> str:
        """Initialise if needed, start (or adopt a running server) and return the superuser URL."""
        self.initialise()
        existing = self.running_port()
        if existing is not None:
            self.port = existing
            return self.url()
        self.port = self.port or free_port()
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60",
            "-o", f"-p {self.port}", "start",
        )
        return self.url()

    def stop(self) -> None:
        if self.running_port() is None:
            return
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def running_port(data_dir: Path) -> int | None:
    """The port of a server running on `data_dir` (from its postmaster.pid), if any."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass  # alive, and owned by the server's own user
    except OSError:
        return None  # a stale file left by a crash
    return port


def _has_c_utf8() -> bool:
    return Path("/usr/lib/locale/C.utf8").exists() or Path("/usr/lib/locale/C.UTF-8").exists()
