"""What the numbers were measured on: CPU, memory, kernel and the versions of every side."""

from __future__ import annotations

import platform
import socket
import subprocess
from pathlib import Path

from bench.cluster import SETTINGS


def _first(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_count() -> int:
    return sum(1 for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("processor"))


def memory_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def describe(bindir: Path, postgraphile_version: str) -> dict[str, object]:
    """A JSON-ready description of this machine and the software under test."""
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": cpu_count(),
        "memory_mib": memory_mib(),
        "free": subprocess.run(["free", "-m"], capture_output=True, text=True,
                               check=False).stdout.strip(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": _first([str(bindir / "postgres"), "--version"]),
        "pg_dump": _first(["pg_dump", "--version"]),
        "zstd": _first(["zstd", "--version"]).strip("* "),
        "wrk": _first(["wrk", "--version"]),
        "node": _first(["node", "--version"]),
        "postgraphile": postgraphile_version,
        "cluster_settings": dict(SETTINGS),
    }


def short_name() -> str:
    """The machine part of a results file name: host name, cores, memory."""
    return f"{socket.gethostname().split('.')[0]}-{cpu_count()}c-{memory_mib() // 1024}g"
