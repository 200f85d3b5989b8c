"""Manifests are input too (a repository can be damaged or written by another version): any
bytes, and any field of a valid manifest replaced by any JSON value, either load or raise
FormatError naming the manifest, never another exception.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.errors import FormatError
from backup.storage.manifest import (
    Chunk,
    Column,
    ObjectRef,
    SegmentManifest,
    SnapshotManifest,
    TableImage,
    dump,
    load,
)

REF = ObjectRef(key="snapshots/x/chunk-0001", sha256="0" * 64, size=10)
SNAPSHOT = SnapshotManifest(
    id="20261122T020000Z", cut_at=datetime(2026, 11, 22, 2, tzinfo=UTC), position="1/0",
    database="vaxvault", server_version="15.18", encryption_key_id=None, schema=REF,
    tables=(TableImage(schema="public", name="doses", columns=(Column("id", "bigint"),),
                       primary_key=("id",), rows=3,
                       chunks=(Chunk(object=REF, rows=3, first_key={"id": 1}, last_key={"id": 3},
                                     bounds={"administered_on": ["2021-01-01", "2021-02-01"]}),)),))
SEGMENT = SegmentManifest(
    id="20261122T020500Z", cut_at=datetime(2026, 11, 22, 2, 5, tzinfo=UTC), from_position="1/0",
    to_position="1/9", changes=9, first_position="1/1", last_position="1/9",
    first_committed_at=datetime(2026, 11, 22, 2, 1, tzinfo=UTC),
    last_committed_at=datetime(2026, 11, 22, 2, 4, tzinfo=UTC), tables=("doses",),
    encryption_key_id=None, object=REF)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += _paths(item, (*prefix, index))
    return paths


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


def _load_or_format_error(data: bytes) -> None:
    try:
        load(data, "manifest under test")
    except FormatError as exc:
        assert "manifest under test" in str(exc)


def test_the_fixtures_round_trip() -> None:
    assert load(dump(SNAPSHOT), "snapshot") == SNAPSHOT
    assert load(dump(SEGMENT), "segment") == SEGMENT


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes(data: bytes) -> None:
    _load_or_format_error(data)


@settings(max_examples=300, deadline=None)
@given(which=st.sampled_from([SNAPSHOT, SEGMENT]), choice=st.integers(0, 10_000), value=JSON_VALUES,
       drop=st.booleans())
def test_any_field_replaced_or_dropped(which: SnapshotManifest | SegmentManifest, choice: int,
                                       value: Any, drop: bool) -> None:
    document = json.loads(dump(which))
    paths = _paths(document)
    path = paths[choice % len(paths)]
    if drop:
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        del parent[path[-1]]
    else:
        _replace(document, path, value)
    _load_or_format_error(json.dumps(document).encode())


def test_infinity_and_deep_nesting_are_format_errors() -> None:
    document = json.loads(dump(SNAPSHOT))
    document["tables"][0]["rows"] = float("inf")
    with pytest.raises(FormatError, match="malformed field"):
        load(json.dumps(document).encode(), "manifest under test")
    with pytest.raises(FormatError, match="not valid JSON"):
        load(b"[" * 100_000 + b"]" * 100_000, "manifest under test")


def test_dump_writes_the_fields_and_load_reads_them_back() -> None:
    written = json.loads(dump(SEGMENT))
    assert (written["id"], written["changes"], written["from_position"], written["to_position"]) == (
        "20261122T020500Z", 9, "1/0", "1/9")
    assert written["cut_at"] == "2026-11-22T02:05:00+00:00"
    assert written["object"] == {"key": "snapshots/x/chunk-0001", "sha256": "0" * 64, "size": 10}
    for manifest in (SNAPSHOT, SEGMENT):
        assert load(dump(manifest), "manifest under test") == manifest
