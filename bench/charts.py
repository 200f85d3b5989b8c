"""Pictures of how cost grows with the registry: seconds against recipients, log-log, each of
our figures next to its peer. Drawn from the results JSON alone, like the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A file backend: the bench runs headless, on servers without a display.
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# (section of the results, tool name as recorded, label in the picture); peers dashed.
SERIES = {
    "snapshot": [("vaxvault backup run --full", "vaxvault full snapshot", False),
                 ("pg_dump | zstd -3", "pg_dump | zstd -3", True),
                 ("pg_dump -Fc", "pg_dump -Fc", True),
                 ("pgbackrest backup --type=full", "pgBackRest full", True)],
    "restore": [("backup run --incremental (ships the damage)", "incremental run (the damage)", False),
                ("vaxvault restore records --dry-run", "restore records --dry-run", False),
                ("vaxvault restore records", "restore records", False),
                ("vaxvault restore records, after its dry run", "restore records after its dry run", False),
                ("vaxvault backup verify --deep", "backup verify --deep", False),
                ("pg_restore (full dump, scratch DB)", "pg_restore of a full dump", True)],
}
TITLES = {"snapshot": "Full snapshot", "restore": "Lost-record restore"}
# Peak memory of our own commands, against the bound for them at every size.
MEMORY_SERIES = [("snapshot", "vaxvault backup run --full", "backup run --full"),
                 ("restore", "backup run --incremental (ships the damage)", "backup run (the damage)"),
                 ("restore", "vaxvault restore records --dry-run", "restore records --dry-run"),
                 ("restore", "vaxvault restore records", "restore records"),
                 ("restore", "vaxvault backup verify --deep", "backup verify --deep")]
MEMORY_BOUND_MIB = 300


def _points(results: dict[str, Any], section: str, tool: str,
            field: str = "seconds") -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for size in results["sizes"]:
        for row in size.get(section, []):
            if row.get("tool") == tool and row.get(field):
                xs.append(size["recipients"])
                ys.append(row[field])
    return xs, ys


def draw_growth(results: dict[str, Any], path: Path) -> Path | None:
    """Write one PNG with a panel per section; None when fewer than two sizes were measured
    (a single point shows no growth)."""
    if len({size["recipients"] for size in results["sizes"]}) < 2:
        return None
    figure, axes = plt.subplots(1, len(SERIES) + 1, figsize=(16, 4.6))
    for ax, (section, series) in zip(axes, SERIES.items(), strict=False):
        for tool, label, peer in series:
            xs, ys = _points(results, section, tool)
            if xs:
                ax.plot(xs, ys, marker="o", linestyle="--" if peer else "-", label=label)
        log_log(ax, "recipients", "seconds (wall)", TITLES[section])
    memory = axes[-1]
    for section, tool, label in MEMORY_SERIES:
        xs, ys = _points(results, section, tool, "peak_rss_mib")
        if xs:
            memory.plot(xs, ys, marker="o", label=label)
    memory.axhline(MEMORY_BOUND_MIB, color="red", linestyle=":", label=f"{MEMORY_BOUND_MIB} MiB bound")
    log_log(memory, "recipients", "peak resident MiB", "Peak memory (ours)")
    return save(figure, "How cost grows (dashed: peers; shared 2-core machine)", path)


def log_log(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    """A panel of seconds against size, both axes logarithmic (growth shows as slope)."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def save(figure: Any, title: str, path: Path) -> Path:
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
