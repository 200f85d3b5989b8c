"""CPU seconds of the benchmark cluster's server processes (live children + reaped ones) and of
a measured client pipeline (wait4 rusage of each process)."""
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()


def server_cpu(data_dir: Path) -> float:
    """utime+stime of the postmaster's live children plus cutime+cstime of the postmaster
    (reaped backends), in seconds."""
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    fields = _stat(pid)
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            f = _stat(int(child))
            total += int(f[11]) + int(f[12])
        except FileNotFoundError:
            pass
    return total / TICK
