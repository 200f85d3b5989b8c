"""Choosing the snapshot and segments for T: a pure function of manifests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.restore.errors import RestorePlanError
from backup.restore.source import choose
from backup.storage.manifest import ObjectRef, SegmentManifest, SnapshotManifest
from backup.storage.position import Position, format_position, includes, parse_position

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


def test_a_full_run_with_nothing_to_ship_links_the_chain() -> None:
    """A full run that found no change cut no segment; its snapshot's `continues` bridges it."""
    quiet = replace(snapshot(2, "b2"), continues="b")
    segments = [segment(1, "a", "b"), segment(3, "b2", "c")]
    history = choose([snapshot(0, "a"), quiet], segments, at(1.5))
    assert history.snapshot.id == "s0" and [s.id for s in history.segments] == ["g1", "g3"]
    assert history.gap_after is None and history.reached == at(3)
    with pytest.raises(RestorePlanError, match="a segment is missing after"):
        choose([snapshot(0, "a"), snapshot(2, "b2")], segments, at(1.5))


@given(st.data())
def test_includes_is_inclusion_of_visible_transactions(data: st.DataObject) -> None:
    def position() -> Position:
        xmin = data.draw(st.integers(3, 12))
        xmax = data.draw(st.integers(xmin, 14))
        running = data.draw(st.frozensets(st.integers(xmin, max(xmin, xmax - 1)), max_size=3))
        return Position(xmin, xmax, frozenset(x for x in running if x < xmax))

    later, earlier = position(), position()
    visible = {t for t in range(20) if earlier.visible(t)} <= {t for t in range(20) if later.visible(t)}
    text_later, text_earlier = format_position(later), format_position(earlier)
    assert parse_position(text_later) == later
    assert includes(text_later, text_earlier) == visible
