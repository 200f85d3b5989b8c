"""Parsing pgoutput's logical replication messages (protocol version 1) into row changes.

Pure: bytes in, records out. pgoutput is the output plugin built into PostgreSQL (no contrib or
extra package); every value comes length-prefixed in its type's text output, with the column's
type OID, so nothing needs unquoting, and a publication limits decoding to the captured tables.
Only the messages of protocol 1 are read (Begin, Commit, Relation, Insert, Update, Delete,
Truncate; Origin and Type are skipped).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backup.errors import CaptureError

# PostgreSQL timestamps count microseconds from 2000-01-01 UTC.
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# A value the new tuple of an UPDATE did not carry: a TOASTed column the UPDATE left as it was.
UNCHANGED = object()


@dataclass(frozen=True)
class Relation:
    """A table as the decoded WAL described it: names and type OIDs of its columns, in order."""

    oid: int
    schema: str
    name: str
    identity: str
    columns: tuple[str, ...]
    types: tuple[int, ...]
    key_flags: tuple[bool, ...]


@dataclass(frozen=True)
class RowChange:
    """One decoded change. old/new: text values per column (None is NULL); op I/U/D/T.
    xid is the 32-bit transaction id; committed_at and end_lsn are its commit's."""

    xid: int
    committed_at: datetime
    end_lsn: int
    relation: Relation
    op: str
    old: tuple[str | None, ...] | None
    new: tuple[str | None, ...] | None


_INT16 = struct.Struct("!h").unpack_from
_INT32 = struct.Struct("!i").unpack_from


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return int(value)

    def byte(self) -> str:
        value = chr(self.data[self.at])
        self.at += 1
        return value

    def string(self) -> str:
        end = self.data.index(b"\0", self.at)
        value = self.data[self.at:end].decode()
        self.at = end + 1
        return value

    def tuple(self) -> tuple[object, ...]:
        # The hot loop of a drain (one pass per column of every change): locals, no method calls.
        data, at = self.data, self.at
        (count,) = _INT16(data, at)
        at += 2
        values: list[object] = []
        append = values.append
        for _ in range(count):
            kind = data[at]
            at += 1
            if kind == 116:  # 't': text
                (size,) = _INT32(data, at)
                at += 4
                append(data[at:at + size].decode())
                at += size
            elif kind == 110:  # 'n': NULL
                append(None)
            elif kind == 117:  # 'u': unchanged TOASTed value
                append(UNCHANGED)
            else:
                raise CaptureError(f"pgoutput sent a column in format {chr(kind)!r}; only text is read")
        self.at = at
        return tuple(values)


def _timestamp(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class Decoder:
    """Reads pgoutput messages one at a time (relations are described once per decoding call and
    a transaction's changes come before its commit, so the decoder keeps both between messages)."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}
        self.pending: list[tuple[Relation, str, tuple[object, ...] | None, tuple[object, ...] | None]] = []
        self.xid = 0
        self.committed_at = _EPOCH

    def feed(self, data: bytes) -> list[RowChange]:
        """The changes of the transaction `data` commits (none for any other message). An UPDATE
        that changes the primary key comes as it was made (op U with both rows); the caller
        splits it. Raises CaptureError on a message it cannot read."""
        reader = _Reader(bytes(data))
        kind = reader.byte()
        if kind == "B":
            reader.take("!q")  # the commit's LSN, sent again with the Commit
            self.committed_at = _timestamp(reader.take("!q"))
            self.xid = reader.take("!I")
            self.pending = []
        elif kind == "C":
            reader.take("!b")
            reader.take("!q")
            end_lsn = reader.take("!q")
            done = [RowChange(self.xid, self.committed_at, end_lsn, relation, op,
                              _complete(relation, old, None), _complete(relation, new, old))
                    for relation, op, old, new in self.pending]
            self.pending = []
            return done
        elif kind == "R":
            self._relation_message(reader)
        elif kind in "IUD":
            self._row_message(kind, reader)
        elif kind == "T":
            count = reader.take("!i")
            reader.take("!b")
            for _ in range(count):
                self.pending.append((self._relation(reader.take("!I")), "T", None, None))
        elif kind not in "OY":
            raise CaptureError(f"pgoutput sent a message of kind {kind!r}, which this version does not read")
        return []

    def _relation_message(self, reader: _Reader) -> None:
        oid = reader.take("!I")
        schema, name = reader.string(), reader.string()
        identity = reader.byte()
        names, types, flags = [], [], []
        for _ in range(reader.take("!h")):
            flags.append(bool(reader.take("!b") & 1))
            names.append(reader.string())
            types.append(reader.take("!I"))
            reader.take("!i")  # typmod: the values already conform to it
        self.relations[oid] = Relation(oid, schema, name, identity, tuple(names), tuple(types), tuple(flags))

    def _row_message(self, kind: str, reader: _Reader) -> None:
        relation = self._relation(reader.take("!I"))
        old: tuple[object, ...] | None = None
        new: tuple[object, ...] | None = None
        part = reader.byte()
        if part == "K":
            raise CaptureError(
                f"table {relation.name} sent only its key as the old row: it needs REPLICA IDENTITY "
                "FULL for logical capture; run 'vaxvault backup init' again")
        if part == "O":
            old = reader.tuple()
            if kind == "U":
                part = reader.byte()
        if part == "N":
            new = reader.tuple()
        if kind == "U" and old is None:
            raise CaptureError(
                f"an UPDATE of {relation.name} came without its old row: the table needs REPLICA "
                "IDENTITY FULL for logical capture; run 'vaxvault backup init' again")
        self.pending.append((relation, kind, old, new))

    def _relation(self, oid: int) -> Relation:
        try:
            return self.relations[oid]
        except KeyError as exc:
            raise CaptureError(f"pgoutput sent a change of relation {oid} before describing it") from exc


def decode(messages: Iterable[bytes]) -> Iterator[RowChange]:
    """The row changes of the committed transactions in `messages`, in commit order."""
    decoder = Decoder()
    for data in messages:
        yield from decoder.feed(data)


def _complete(relation: Relation, values: tuple[object, ...] | None,
              old: tuple[object, ...] | None) -> tuple[str | None, ...] | None:
    """`values` with every unchanged TOASTed column taken from the old row (REPLICA IDENTITY FULL
    logs the old row whole, its TOASTed values inlined)."""
    if values is None:
        return None
    if any(v is UNCHANGED for v in values):
        if old is None or any(v is UNCHANGED for v in old):
            raise CaptureError(f"an UPDATE of {relation.name} left a TOASTed column out and no old row "
                               "holds it: the table needs REPLICA IDENTITY FULL")
        values = tuple(o if v is UNCHANGED else v for v, o in zip(values, old, strict=True))
    return values  # type: ignore[return-value]
