"""Running commands and pipelines with wall time and each process's peak memory (wait4)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class CommandFailed(Exception):
    """A measured command exited non-zero."""


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mib: float  # the processes run at once, so their peaks add up


def run_pipeline(commands: list[list[str]], output: Path | None = None,
                 env: dict[str, str] | None = None) -> Measured:
    """Run commands connected by pipes (the last writing to `output`); raise CommandFailed."""
    started = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryFile() as errors, \
            (open(output, "wb") if output else open(os.devnull, "wb")) as sink:
        previous = None
        for index, command in enumerate(commands):
            last = index == len(commands) - 1
            proc = subprocess.Popen(command, stdin=previous.stdout if previous else subprocess.DEVNULL,
                                    stdout=sink if last else subprocess.PIPE, stderr=errors,
                                    env={**os.environ, **(env or {})})
            if previous is not None and previous.stdout is not None:
                previous.stdout.close()  # so the writer sees a broken pipe if the reader dies
            procs.append(proc)
            previous = proc
        peak_kib = 0
        failed: list[str] = []
        for proc, command in zip(procs, commands, strict=True):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            peak_kib += usage.ru_maxrss
            if proc.returncode != 0:
                failed.append(f"{command[0]} exited {proc.returncode}")
        if failed:
            errors.seek(0)
            detail = errors.read().decode(errors="replace").strip()[-500:]
            raise CommandFailed(f"{'; '.join(failed)}: {detail}")
    return Measured(round(time.perf_counter() - started, 2), round(peak_kib / 1024, 1))
