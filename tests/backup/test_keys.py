"""Object keys and ids: every format_* has a parse_* twin."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.errors import FormatError
from backup.storage import keys

moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1),
                       timezones=st.just(UTC))
tables = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)


@given(moments)
def test_id_round_trip_and_order(at: datetime) -> None:
    assert keys.parse_id(keys.format_id(at)) == at


@given(moments, moments)
def test_ids_sort_in_time_order(a: datetime, b: datetime) -> None:
    assert (keys.format_id(a) < keys.format_id(b)) == (a < b)


@given(moments, tables, st.integers(0, 999_999))
def test_chunk_key_round_trip(at: datetime, table: str, seq: int) -> None:
    sid = keys.format_id(at)
    parsed = keys.parse_key(keys.format_chunk_key(sid, table, seq))
    assert parsed == keys.ObjectKey("snapshot", sid, "chunk", table, seq)


@given(moments, tables)
def test_segment_image_key_round_trip(at: datetime, table: str) -> None:
    sid = keys.format_id(at)
    parsed = keys.parse_key(keys.format_segment_image_key(sid, table))
    assert parsed == keys.ObjectKey("segment", sid, "image", table)


@given(moments)
def test_manifest_schema_and_changes_keys_round_trip(at: datetime) -> None:
    sid = keys.format_id(at)
    parse, key = keys.parse_key, keys.ObjectKey
    assert parse(keys.format_snapshot_manifest_key(sid)) == key("snapshot", sid, "manifest")
    assert parse(keys.format_schema_key(sid)) == key("snapshot", sid, "schema")
    assert parse(keys.format_segment_manifest_key(sid)) == key("segment", sid, "manifest")
    assert parse(keys.format_segment_changes_key(sid)) == key("segment", sid, "changes")


@pytest.mark.parametrize("key", [
    "snapshots/2026/manifest.json", "other/x", "segments/20261122T020000000000Z/x",
    "snapshots/20261122T020000000000Z/tables/t/1.copy.zst",
    "segments/20261122T020000000000Z/tables/t/000000.copy.zst",
    "segments/20261122T020000000000Z/tables/t.zst"])
def test_foreign_keys_are_refused(key: str) -> None:
    with pytest.raises(FormatError):
        keys.parse_key(key)


def test_table_names_that_would_escape_a_key_are_refused() -> None:
    with pytest.raises(FormatError, match=r"\.\./x"):
        keys.format_chunk_key("20261122T020000000000Z", "../x", 0)
