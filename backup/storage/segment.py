"""Segment payload: one JSON object per line per Change, in position order (before zstd/encryption)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime

from backup.errors import FormatError
from backup.storage.change import Change, Op


def encode_changes(changes: Iterable[Change]) -> bytes:
    lines = [
        json.dumps({"position": c.position, "txid": c.txid, "committed_at": c.committed_at.isoformat(),
                    "table": c.table, "op": c.op.value, "key": c.key, "old": c.old, "new": c.new},
                   separators=(",", ":"), sort_keys=True)
        for c in changes
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def iter_changes(data: bytes, what: str) -> Iterator[Change]:
    """Parse a segment payload one line at a time (memory: one change, not the segment);
    raise FormatError naming the first bad line."""
    for number, line in enumerate(io.BytesIO(data), start=1):
        change = parse_change(line, number, what)
        if change is not None:
            yield change


def parse_change(line: bytes, number: int, what: str) -> Change | None:
    """Line `number` of a segment payload (None when blank); raise FormatError when it is not
    a change record."""
    if not line.strip():
        return None
    try:
        raw = json.loads(line)
        return Change(
            position=int(raw["position"]), txid=int(raw["txid"]),
            committed_at=datetime.fromisoformat(raw["committed_at"]), table=raw["table"],
            op=Op(raw["op"]), key=raw["key"], old=raw["old"], new=raw["new"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"{what} line {number} is not a change record: {exc}") from exc


def decode_changes(data: bytes, what: str) -> list[Change]:
    """Parse a segment payload; raise FormatError naming the first bad line."""
    return list(iter_changes(data, what))
