"""Retention: which snapshots and segments can go without losing a kept point in time.

Kept: the newest `keep_full` snapshots, every snapshot of the last `keep_days` days, and the
newest snapshot before that window (the base for restoring to its first moment). A segment goes
only when it was cut at or before the oldest kept snapshot (the snapshot already contains it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from backup.errors import ConfigError
from backup.stages import Stage, remove_unit, scan
from backup.storage.keys import parse_id


@dataclass(frozen=True)
class Unit:
    kind: str
    id: str
    cut_at: datetime


@dataclass(frozen=True)
class PrunePlan:
    snapshots: tuple[str, ...]
    segments: tuple[str, ...]


def plan_prune(units: list[Unit], keep_full: int, keep_days: float, now: datetime) -> PrunePlan:
    """Pure: the ids to delete. Raises ConfigError for keep_full < 1 or keep_days < 0."""
    if keep_full < 1:
        raise ConfigError(f"--keep-full {keep_full} must be at least 1: a point in time needs a snapshot")
    if keep_days < 0:
        raise ConfigError(f"--keep-days {keep_days} must not be negative")
    snapshots = sorted((u for u in units if u.kind == "snapshot"), key=lambda u: u.id)
    segments = sorted((u for u in units if u.kind == "segment"), key=lambda u: u.id)
    if not snapshots:
        return PrunePlan((), ())
    window_start = now - timedelta(days=keep_days)
    kept = set(u.id for u in snapshots[-keep_full:])
    kept |= {u.id for u in snapshots if u.cut_at >= window_start}
    before = [u for u in snapshots if u.cut_at < window_start]
    if before and keep_days > 0:
        kept.add(before[-1].id)
    oldest_kept = min(kept)
    return PrunePlan(
        snapshots=tuple(u.id for u in snapshots if u.id not in kept),
        segments=tuple(u.id for u in segments if u.id <= oldest_kept),
    )


def stored_units(stages: list[Stage]) -> list[Unit]:
    """Every committed unit at any stage."""
    ids: set[tuple[str, str]] = set()
    for stage in stages:
        ids |= {unit for unit, committed in scan(stage.repo).items() if committed}
    return [Unit(kind, unit_id, parse_id(unit_id)) for kind, unit_id in sorted(ids)]


def apply_prune(stages: list[Stage], plan: PrunePlan) -> int:
    """Delete the planned units at every stage (manifest first); return objects removed."""
    removed = 0
    for stage in stages:
        present = scan(stage.repo)
        for kind, ids in (("snapshot", plan.snapshots), ("segment", plan.segments)):
            for unit_id in ids:
                if (kind, unit_id) in present:
                    removed += remove_unit(stage.repo, kind, unit_id)
    return removed
