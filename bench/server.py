"""The two GraphQL servers under test, each a child process on its own port.

Ours: `vaxvault serve` (one uvicorn worker, pool of 10). The peer: PostGraphile v4 from npm
(one node process, pg pool of 10) on the same database, connected as the superuser: no
permission logic, as the issue asks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from api.embedded_postgres import free_port
from bench.cluster import CACHE
from bench.progress import say

NODE_MODULES = CACHE / "node_modules"
POSTGRAPHILE = NODE_MODULES / ".bin" / "postgraphile"
VAXVAULT = Path(sys.executable).parent / "vaxvault"
BENCH_JWT_SECRET = "bench-secret-long-enough-for-production-use-0123456789"
PEER_SCHEMA = "bench_peer"


class ServerFailed(Exception):
    """A server under test did not come up."""


def ensure_postgraphile() -> str:
    """Install PostGraphile v4 into bench/.cache once; return its version."""
    if not POSTGRAPHILE.exists():
        say("installing postgraphile@4 from npm into bench/.cache")
        CACHE.mkdir(parents=True, exist_ok=True)
        if not (CACHE / "package.json").exists():
            (CACHE / "package.json").write_text('{"name": "vaxvault-bench-peers", "private": true}\n')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "postgraphile@4"],
                       cwd=CACHE, check=True, stdout=subprocess.DEVNULL)
    package = json.loads((NODE_MODULES / "postgraphile" / "package.json").read_text())
    return str(package["version"])


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 180  # several workers on a busy machine start slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"{url} exited {proc.returncode}; see {log}")
        try:
            response = httpx.post(url, json={"query": "{ __typename }"}, timeout=2)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ServerFailed(f"{url} did not answer within 180 s; see {log}")


@contextmanager
def _serve(name: str, command: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    log = CACHE / f"{name}.log"
    url = f"http://127.0.0.1:{port}/graphql"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env})
        try:
            _wait_ready(proc, url, log)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def ours(database_url: str, extra_env: dict[str, str] | None = None,
         workers: int = 1) -> Iterator[str]:
    """`vaxvault serve --workers N` on a free port; yields the /graphql URL."""
    port = free_port()
    env = {"VAXVAULT_DATABASE_URL": database_url, "VAXVAULT_JWT_SECRET": BENCH_JWT_SECRET,
           "VAXVAULT_ENV": "production", **(extra_env or {})}
    command = [str(VAXVAULT), "serve", "--port", str(port), "--workers", str(workers)]
    with _serve("vaxvault", command, env, port) as url:
        yield url


@contextmanager
def postgraphile(database_url: str) -> Iterator[str]:
    """PostGraphile v4 on a free port over the public schema and the peer's helper schema."""
    port = free_port()
    command = [str(POSTGRAPHILE), "-c", database_url, "-s", f"public,{PEER_SCHEMA}",
               "-n", "127.0.0.1", "-p", str(port), "--disable-query-log"]
    with _serve("postgraphile", command, {"NODE_ENV": "production"}, port) as url:
        yield url
