"""Choosing the snapshot and segments for T: a pure function of manifests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backup.restore.errors import RestorePlanError
from backup.restore.source import choose
from backup.storage.manifest import ObjectRef, SegmentManifest, SnapshotManifest

START = datetime(2026, 11, 20, tzinfo=UTC)
REF = ObjectRef("k", "0" * 64, 1)


def snapshot(hour: int, position: str) -> SnapshotManifest:
    return SnapshotManifest(id=f"s{hour}", cut_at=START + timedelta(hours=hour), position=position,
                            database="db", server_version="16", encryption_key_id=None, schema=REF,
                            tables=())


def segment(hour: int, start: str, end: str) -> SegmentManifest:
    return SegmentManifest(id=f"g{hour}", cut_at=START + timedelta(hours=hour), from_position=start,
                           to_position=end, changes=1, first_position=1, last_position=1,
                           first_committed_at=None, last_committed_at=None, tables=("doses",),
                           encryption_key_id=None, object=REF)


def at(hour: float) -> datetime:
    return START + timedelta(hours=hour)


SNAPSHOTS = [snapshot(0, "a"), snapshot(3, "d")]
SEGMENTS = [segment(0, "z", "a"), segment(1, "a", "b"), segment(2, "b", "c"), segment(3, "c", "d"),
            segment(4, "d", "e"), segment(6, "x", "y")]  # e -> x is missing: a gap after hour 4


def test_latest_snapshot_at_or_before_t_and_the_chain_after_it() -> None:
    history = choose(SNAPSHOTS, SEGMENTS[:5], at(2.5))
    assert history.snapshot.id == "s0"
    assert [s.id for s in history.segments] == ["g1", "g2", "g3", "g4"]
    assert history.gap_after is None
    assert choose(SNAPSHOTS, SEGMENTS[:5], at(3)).snapshot.id == "s3"


def test_a_gap_before_t_is_refused_and_after_t_is_recorded() -> None:
    with pytest.raises(RestorePlanError, match="a segment is missing after 2026-11-20T04:00:00"):
        choose(SNAPSHOTS, SEGMENTS, at(5))
    history = choose(SNAPSHOTS, SEGMENTS, at(3.5))
    assert [s.id for s in history.segments] == ["g4"] and history.gap_after == at(4)


def test_no_snapshot_old_enough() -> None:
    with pytest.raises(RestorePlanError, match=r"no snapshot at or before .* \(the oldest snapshot is"):
        choose(SNAPSHOTS, SEGMENTS, at(-1))
    with pytest.raises(RestorePlanError, match="the repository has none"):
        choose([], [], at(1))
