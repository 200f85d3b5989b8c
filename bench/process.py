"""Running commands and pipelines with wall time and each process's peak memory.

Peak memory comes from GNU time wrapped around each command, not from wait4 on our own child:
Linux carries the high-water mark of the memory a process had before exec into its peak, so a
child forked from this (large) bench process reported our ~47 MiB as its floor. GNU time is a
small process of its own; what its child reports is the tool's own peak.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench import debian
from bench.progress import say


class CommandFailed(Exception):
    """A measured command exited non-zero."""


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mib: float  # the processes run at once, so their peaks add up


@cache
def _gnu_time() -> str | None:
    try:
        return debian.ensure("time")
    except debian.ToolMissing as exc:
        say(f"{exc}: peak memory from wait4, which includes ~47 MiB inherited from the bench")
        return None


def _peak_kib(report: Path, usage_kib: int) -> int:
    """GNU time's %M (the last line of its report; a failed command's line comes first)."""
    try:
        return int(report.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return usage_kib


def run_pipeline(commands: list[list[str]], output: Path | None = None,
                 env: dict[str, str] | None = None) -> Measured:
    """Run commands connected by pipes (the last writing to `output`); raise CommandFailed."""
    started = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    gnu_time = _gnu_time()
    with tempfile.TemporaryFile() as errors, tempfile.TemporaryDirectory() as reports, \
            (open(output, "wb") if output else open(os.devnull, "wb")) as sink:
        report = [Path(reports) / f"{index}.rss" for index in range(len(commands))]
        previous = None
        for index, command in enumerate(commands):
            last = index == len(commands) - 1
            measured = [gnu_time, "-f", "%M", "-o", str(report[index]), *command] if gnu_time else command
            proc = subprocess.Popen(measured, stdin=previous.stdout if previous else subprocess.DEVNULL,
                                    stdout=sink if last else subprocess.PIPE, stderr=errors,
                                    env={**os.environ, **(env or {})})
            if previous is not None and previous.stdout is not None:
                previous.stdout.close()  # so the writer sees a broken pipe if the reader dies
            procs.append(proc)
            previous = proc
        peak_kib = 0
        failed: list[str] = []
        for index, (proc, command) in enumerate(zip(procs, commands, strict=True)):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            peak_kib += _peak_kib(report[index], usage.ru_maxrss) if gnu_time else usage.ru_maxrss
            if proc.returncode != 0:
                failed.append(f"{command[0]} exited {proc.returncode}")
        if failed:
            errors.seek(0)
            detail = errors.read().decode(errors="replace").strip()[-500:]
            raise CommandFailed(f"{'; '.join(failed)}: {detail}")
    return Measured(round(time.perf_counter() - started, 2), round(peak_kib / 1024, 1))
