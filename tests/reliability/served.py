"""The API as its own process (`vaxvault serve`), so its memory can be read from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from api.embedded_postgres import free_port
from api.settings import Settings

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
def served(settings: Settings, log: Path) -> Iterator[ServedApi]:
    """`vaxvault serve` on a free port with these settings; stopped (SIGTERM) on exit."""
    port = free_port()
    env = {**os.environ, "VAXVAULT_DATABASE_URL": settings.require_database_url(),
           "VAXVAULT_JWT_SECRET": settings.jwt_secret or "",
           "VAXVAULT_STATE_DIR": str(settings.state_dir), "VAXVAULT_ENV": settings.env,
           "VAXVAULT_POOL_SIZE": str(settings.pool_max_size)}
    with open(log, "wb") as out:
        # One worker: its memory is the process's (production would default to one per core).
        proc = subprocess.Popen([str(VAXVAULT), "serve", "--port", str(port), "--workers", "1"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"vaxvault serve exited {proc.returncode}: {log.read_text()}")
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("vaxvault serve did not answer /healthz within 30 s")
                time.sleep(0.1)
            yield ServedApi(url, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
