"""The streaming object check (verify --deep) against the whole-object path it replaces:
same hash, size and row count for any payload, key and piece boundaries, and a problem exactly
where the whole-object decode refuses (differential, hypothesis)."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from backup.errors import BackupError
from backup.storage import codec
from backup.storage.change import Change, Op
from backup.storage.codec import Key
from backup.storage.object_check import check_object
from backup.storage.segment import encode_changes, iter_changes

KEY = Key(os.urandom(32))
OTHER_KEY = Key(os.urandom(32))


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _whole(data: bytes, object_key: str, key: Key | None, changes: bool) -> tuple[int | None, bool]:
    """(rows, refused) by the old path: decode whole, then count or parse."""
    try:
        payload = codec.decode(data, object_key, key)
        return (sum(1 for _ in iter_changes(payload, object_key)) if changes
                else payload.count(b"\n")), False
    except BackupError:
        return None, True


changes_strategy = st.lists(st.builds(
    Change, position=st.integers(1, 10**12), txid=st.integers(1, 10**9),
    committed_at=st.just(datetime(2026, 12, 1, tzinfo=UTC)),
    table=st.sampled_from(["doses", "recipients"]),
    op=st.sampled_from([Op.INSERT, Op.UPDATE, Op.DELETE]), key=st.just({"id": 1}),
    old=st.none() | st.just({"id": 1, "name": "a\nb"}), new=st.none() | st.just({"id": 1})),
    max_size=40)


@settings(max_examples=60, deadline=None)
@given(segment=st.booleans(), changes=changes_strategy,
       chunk=st.binary(max_size=3000), sealed=st.booleans(),
       reader_key=st.sampled_from(["same", "none", "other"]),
       cuts=st.lists(st.integers(0, 10**6), max_size=8),
       damage=st.none() | st.tuples(st.integers(0, 10**6), st.integers(1, 255)),
       blank_lines=st.booleans(), cut_off=st.none() | st.integers(0, 40))
def test_streaming_check_agrees_with_the_whole_object_path(
        segment: bool, changes: list[Change], chunk: bytes, sealed: bool, reader_key: str,
        cuts: list[int], damage: tuple[int, int] | None, blank_lines: bool, cut_off: int | None) -> None:
    object_key = "segments/x.zst" if segment else "snapshots/x/doses/0.zst"
    payload = encode_changes(changes) if segment else chunk
    if segment and blank_lines:
        payload = b"\n" + payload + b"\n"
    stored = codec.encode(payload, object_key, KEY if sealed else None)
    if damage is not None:
        at = damage[0] % len(stored)
        stored = stored[:at] + bytes([stored[at] ^ damage[1]]) + stored[at + 1:]
    if cut_off is not None:  # a short write: cut off in its header, its tag or its first bytes
        stored = stored[:cut_off]
    key = {"same": KEY if sealed else None, "none": None, "other": OTHER_KEY}[reader_key]
    facts = check_object(_pieces(stored, cuts), object_key, key, deep=True, changes=segment)
    assert facts.sha256 == codec.sha256(stored)
    assert facts.size == len(stored)
    rows, refused = _whole(stored, object_key, key, segment)
    assert (facts.problem is not None) == refused, facts.problem
    assert facts.rows == rows
    shallow = check_object(_pieces(stored, cuts), object_key, key, deep=False, changes=segment)
    assert (shallow.sha256, shallow.problem, shallow.rows) == (facts.sha256, None, None)
