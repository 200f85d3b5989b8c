"""Retention: which snapshots and segments can go without losing a kept point in time.

Kept: the newest `keep_full` snapshots, every snapshot of the last `keep_days` days, and the
newest snapshot before that window (the base for restoring to its first moment). A segment goes
only when it was cut at or before the oldest kept snapshot (the snapshot already contains it).

Planned per stage, from what that stage holds: stages drift apart (a primary down for days while
the spool moves on), and a plan merged over all of them could delete a stage's last base because
another stage has a newer one. Prune takes the backup lock, so no run ships or trims meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from backup.errors import ConfigError, DatabaseError
from backup.listing import Listing, stage_listing, write_index
from backup.runner import acquire_lock, connect
from backup.stages import Stage, remove_orphans, remove_unit
from backup.storage.codec import Key
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


def stored_units(listing: Listing) -> list[Unit]:
    """Every committed unit at one stage."""
    return [Unit(kind, unit_id, parse_id(unit_id)) for kind, unit_id in sorted(listing.committed())]


def list_for_prune(stages: list[Stage], key: Key | None) -> dict[str, Listing]:
    """Stage name -> its listing (the spool in full; the others from their checked index)."""
    return {stage.name: stage_listing(stage.name, stage.repo, key) for stage in stages}


def plan_stages(listings: dict[str, Listing], keep_full: int, keep_days: float,
                now: datetime) -> dict[str, PrunePlan]:
    """Stage name -> what to delete there, each planned from that stage's own units."""
    return {name: plan_prune(stored_units(listing), keep_full, keep_days, now)
            for name, listing in listings.items()}


def apply_prune(stage: Stage, plan: PrunePlan, listing: Listing, key: Key | None) -> int:
    """Delete the planned units at one stage (manifest first), oldest first, then rewrite its index;
    return objects removed. Deleting oldest first keeps what prune removes a prefix of each kind,
    which is what lets a reader catch an index that still lists a removed unit (listing.py)."""
    # Leftovers of a killed run or prune go too (prune holds the lock: nothing is uploading), so the
    # index written below hides no garbage that only a full listing would show.
    removed = remove_orphans(stage.repo, listing)
    for kind, ids in (("snapshot", plan.snapshots), ("segment", plan.segments)):
        for unit_id in sorted(ids):
            removed += remove_unit(stage.repo, kind, unit_id)
            listing.drop((kind, unit_id))
    # Not when manifests or the index could not be opened (no key, or another one): an index we
    # write must be one the run's key opens. The stale one fails its checks (it lists the oldest
    # units deleted above), and the next run rewrites it.
    if stage.name != "spool" and listing.stale() and not listing.refused and not listing.index_refused:
        write_index(stage.repo, listing, key)
    return removed


async def prune(database_url: str, stages: list[Stage], keep_full: int, keep_days: float, now: datetime,
                dry_run: bool = False, key: Key | None = None) -> tuple[dict[str, PrunePlan], int]:
    """Plan per stage and (unless dry_run) delete, holding the backup lock; return the plans and the
    objects removed. Raises LockHeld while a backup runs, DatabaseError when the lock cannot be taken."""
    conn = await connect(database_url)
    try:
        await acquire_lock(conn)
        listings = list_for_prune(stages, key)
        plans = plan_stages(listings, keep_full, keep_days, now)
        removed = 0 if dry_run else sum(apply_prune(stage, plans[stage.name], listings[stage.name], key)
                                        for stage in stages)
    except OSError as exc:
        raise DatabaseError(f"lost the database connection holding the backup lock: {exc}") from exc
    finally:
        await conn.close()  # releases the lock with the session
    return plans, removed
