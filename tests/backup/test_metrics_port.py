"""`vaxvault backup schedule --metrics-port`: the runs' metrics over HTTP, as Prometheus reads them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from backup.config import BackupConfig
from tests.backup.conftest import install_capture
from tests.sockets import reserved_port

VAXVAULT = Path(sys.executable).parent / "vaxvault"
LAST_SUCCESS = 'vaxvault_backup_last_success_timestamp_seconds{kind="incremental"}'


async def _scrape(url: str) -> str:
    async with httpx.AsyncClient() as http:
        try:
            return (await http.get(url, timeout=5)).text
        except httpx.TransportError:
            return ""  # not listening yet


async def test_the_scheduler_serves_its_metrics_on_the_given_port(file_config: BackupConfig,
                                                                  tmp_path: Path) -> None:
    await install_capture(file_config.database_url)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VAXVAULT_") or k.startswith("VAXVAULT_TEST_")}
    env.update(VAXVAULT_DATABASE_URL=file_config.database_url,
               VAXVAULT_BACKUP_URL=file_config.primary_url or "",
               VAXVAULT_BACKUP_SPOOL_DIR=str(file_config.spool_dir),
               VAXVAULT_STATE_DIR=str(tmp_path / "state"))
    with reserved_port() as port:
        process = await asyncio.create_subprocess_exec(
            str(VAXVAULT), "backup", "schedule", "--metrics-port", str(port),
            "--full", "0 0 1 1 *", "--incremental", "* * * * * *", "--json", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            metrics = ""
            async with asyncio.timeout(120):  # a bound on a hang, not a measurement
                while LAST_SUCCESS not in metrics:
                    assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
                    metrics = await _scrape(f"http://127.0.0.1:{port}/metrics")
                    await asyncio.sleep(0.1)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "# TYPE vaxvault_backup_last_duration_seconds gauge" in metrics
    line = next(m for m in metrics.splitlines() if m.startswith(LAST_SUCCESS))
    assert float(line.split()[-1]) > 0
    assert b'"runs": ' in out
