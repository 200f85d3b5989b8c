"""The API as its own process (`vaxvault serve`), so its memory can be read from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from api.settings import Settings
from tests.sockets import listening_socket

VAXVAULT = Path(sys.executable).parent / "vaxvault"


@dataclass(frozen=True)
class ServedApi:
    url: str
    pid: int

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for pid {self.pid}")


@contextmanager
def served(settings: Settings, log: Path, workers: int | None = 1) -> Iterator[ServedApi]:
    """`vaxvault serve` on a socket bound here and handed over open; stopped (SIGTERM) on exit.
    workers=None leaves --workers out (the command's default)."""
    env = {**os.environ, "VAXVAULT_DATABASE_URL": settings.require_database_url(),
           "VAXVAULT_JWT_SECRET": settings.jwt_secret or "",
           "VAXVAULT_STATE_DIR": str(settings.state_dir), "VAXVAULT_ENV": settings.env,
           "VAXVAULT_POOL_SIZE": str(settings.pool_max_size)}
    with open(log, "wb") as out, listening_socket() as sock:
        # One worker by default: its memory is the process's (production would default to one
        # per core).
        count = [] if workers is None else ["--workers", str(workers)]
        proc = subprocess.Popen([str(VAXVAULT), "serve", "--fd", str(sock.fileno()), *count],
                                stdout=out,
                                stderr=subprocess.STDOUT, env=env, pass_fds=(sock.fileno(),))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        sock.close()  # the server's copy listens on; if the server dies, connecting is refused
        try:
            # The socket already listens: this request waits in its backlog until the server
            # accepts it, so there is nothing to poll for (the timeout bounds a hang).
            try:
                ready = httpx.get(f"{url}/healthz", timeout=60).status_code
            except httpx.HTTPError as exc:
                raise RuntimeError(f"vaxvault serve did not answer /healthz: {exc}; "
                                   f"exit {proc.poll()}: {log.read_text()}") from exc
            if ready != 200:
                raise RuntimeError(f"vaxvault serve answered /healthz {ready}: {log.read_text()}")
            yield ServedApi(url, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
