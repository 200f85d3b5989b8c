"""find-loss over Change records: unusual bursts, their window, counts, examples and proposed T."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backup.restore.find_loss import LossSettings, _median_without, find_loss, snapshot_differences
from backup.storage.change import Change, Op
from backup.storage.manifest import ObjectRef, SegmentManifest, SnapshotManifest, TableImage

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


class Log:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    def add(self, at: timedelta, op: Op, key: int, old: dict | None, new: dict | None,
            txid: int | None = None, table: str = "doses") -> None:
        position = len(self.changes) + 1
        self.changes.append(Change(position, txid or 1000 + position, START + at, table, op,
                                   {"id": key}, old, new))


def busy_day() -> Log:
    log = Log()
    # Two hours of ordinary corrections and the odd delete: a few per minute.
    for minute in range(120):
        for n in range(3):
            key = minute * 10 + n
            log.add(timedelta(minutes=minute, seconds=n), Op.UPDATE, key,
                    {"id": key, "lot_number": "A", "updated_at": "x"},
                    {"id": key, "lot_number": "B", "updated_at": "y"})
        if minute % 30 == 0:
            log.add(timedelta(minutes=minute, seconds=30), Op.DELETE, 9000 + minute, {"id": 1}, None)
    # The incident at 09:00:10: one statement nulls 300 dates and deletes 50 rows.
    for key in range(5000, 5300):
        log.add(timedelta(minutes=60, seconds=10), Op.UPDATE, key,
                {"id": key, "administered_on": "2021-10-13"}, {"id": key, "administered_on": None},
                txid=77)
    for key in range(6000, 6050):
        log.add(timedelta(minutes=60, seconds=10), Op.DELETE, key, {"id": key}, None, txid=77)
    return log


def test_points_at_the_incident_and_proposes_t_just_before_it() -> None:
    windows = find_loss(busy_day().changes, table="doses")
    # 51 deletes: the ordinary 09:00:30 delete shares the incident's bin.
    assert [(w.signal, w.count) for w in windows] == [("update administered_on", 300), ("delete", 51)]
    top = windows[0]
    assert top.set_to_null == 300
    assert top.transactions == 1
    assert top.start == START + timedelta(minutes=60, seconds=10)
    assert top.proposed_as_of == top.start - timedelta(microseconds=1)
    assert top.example_keys == ({"id": 5000}, {"id": 5001}, {"id": 5002}, {"id": 5003}, {"id": 5004})
    assert top.as_json()["proposed_as_of"] == "2026-11-20T09:00:09.999999+00:00"


def test_ordinary_rates_and_other_tables_and_times_are_not_flagged() -> None:
    log = busy_day()
    assert find_loss(log.changes, table="recipients") == []
    assert find_loss(log.changes, until=START + timedelta(minutes=59)) == []
    assert len(find_loss(log.changes, since=START + timedelta(minutes=59))) == 2


def test_t_skips_legitimate_changes_earlier_in_the_same_window() -> None:
    log = Log()
    for key in range(30):  # a legitimate batch of 30 deletes at 08:00:05 in its own transaction
        log.add(timedelta(seconds=5), Op.DELETE, key, {"id": key}, None, txid=5)
    for key in range(100, 400):  # the incident at 08:00:40, ten times larger
        log.add(timedelta(seconds=40), Op.DELETE, key, {"id": key}, None, txid=6)
    [window] = find_loss(log.changes)
    assert window.count == 330 and window.transactions == 2
    assert window.proposed_as_of == START + timedelta(seconds=40) - timedelta(microseconds=1)


def test_truncate_and_adjacent_bins_merge_into_one_window() -> None:
    log = Log()
    for second in range(0, 180):
        log.add(timedelta(seconds=second), Op.DELETE, second, {"id": second}, None, txid=9)
    log.add(timedelta(minutes=5), Op.TRUNCATE, 0, None, None)
    windows = find_loss(log.changes, settings=LossSettings(min_count=1, factor=1))
    deletes = [w for w in windows if w.signal == "delete"]
    assert len(deletes) == 1 and deletes[0].count == 180
    assert deletes[0].end - deletes[0].start == timedelta(seconds=179)
    assert any(w.signal == "truncate" for w in windows)


def test_median_without_one_value() -> None:
    assert _median_without([5], 5) == 0.0
    assert _median_without([1, 1, 1000], 1000) == 1.0
    assert _median_without([1, 2, 3, 4], 1) == 3.0
    assert _median_without([1, 2, 3, 4, 5], 5) == 2.5


def _snapshot(hour: int, position: str, rows: int) -> SnapshotManifest:
    ref = ObjectRef("k", "0" * 64, 1)
    return SnapshotManifest(id=f"s{hour}", cut_at=START + timedelta(hours=hour), position=position,
                            database="db", server_version="16", encryption_key_id=None, schema=ref,
                            tables=(TableImage("public", "doses", (), ("id",), rows, ()),))


def _segment(start: str, end: str) -> SegmentManifest:
    return SegmentManifest(id=end, cut_at=START, from_position=start, to_position=end, changes=1,
                           first_position=1, last_position=1, first_committed_at=None,
                           last_committed_at=None, tables=("doses",), encryption_key_id=None,
                           object=ObjectRef("k", "0" * 64, 1))


def test_snapshot_differences_cover_only_gaps_without_segments() -> None:
    snapshots = [_snapshot(0, "a", 1000), _snapshot(1, "c", 990), _snapshot(2, "e", 700),
                 _snapshot(3, "f", 800)]
    segments = [_segment("a", "b"), _segment("b", "c"), _segment("c", "d")]  # d -> e is lost
    [window] = snapshot_differences(snapshots, segments, "doses")
    assert (window.count, window.start, window.end) == (290, START + timedelta(hours=1),
                                                         START + timedelta(hours=2))
    assert window.proposed_as_of == window.start
    assert snapshot_differences(snapshots, segments, "recipients") == []
