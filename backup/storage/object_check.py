"""One stored object read in pieces, for verification: its SHA-256 and size and, deep, its
payload decrypted, decompressed and counted as it streams. Memory is a piece and one line,
not the object: a segment of a large incident (266,561 changes) held whole took ~260 MiB."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import zstandard

from backup.errors import BackupError
from backup.storage import codec
from backup.storage.codec import Key
from backup.storage.segment import parse_change

ZSTD_SLICE = 8 << 10


@dataclass(frozen=True)
class ObjectFacts:
    sha256: str
    size: int
    rows: int | None  # deep only: chunk lines, or segment changes (each parsed)
    problem: str | None  # deep only: why the payload cannot be read


class _Payload:
    """Open (codec.SealedStream), decompress and count, fed the stored bytes piece by piece."""

    def __init__(self, object_key: str, key: Key | None, changes: bool) -> None:
        self.object_key, self.changes = object_key, changes
        self.opener = codec.SealedStream(object_key, key)
        self.zstd = zstandard.ZstdDecompressor().decompressobj()
        self.partial = b""
        self.line_number = 0
        self.rows = 0

    def feed(self, piece: bytes) -> None:
        self._plain(self.opener.feed(piece))

    def finish(self) -> None:
        self._plain(self.opener.finish())
        if self.partial:
            self._line(self.partial)
            self.partial = b""

    def _plain(self, compressed: bytes) -> None:
        # zstd returns all the output of its input at once, and a segment of one repeated
        # statement shrinks ~100:1: fed a small slice at a time, the output stays small.
        for start in range(0, len(compressed), ZSTD_SLICE):
            try:
                text = self.zstd.decompress(compressed[start:start + ZSTD_SLICE])
            except zstandard.ZstdError as exc:
                raise codec.not_zstd(exc) from exc
            self._text(text)

    def _text(self, text: bytes) -> None:
        if not self.changes:
            self.rows += text.count(b"\n")
            return
        lines = (self.partial + text).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        self.line_number += 1
        if self.changes and parse_change(line, self.line_number, self.object_key) is not None:
            self.rows += 1


def check_object(pieces: Iterable[bytes], object_key: str, key: Key | None, deep: bool,
                 changes: bool) -> ObjectFacts:
    """Hash every piece; deep, also read the payload (`changes`: a segment, each line parsed as
    a change; else a chunk, lines counted). Storage errors propagate; payload errors become
    `problem` (the hash is still taken over every byte, so corruption is named as such)."""
    digest = hashlib.sha256()
    size = 0
    payload = _Payload(object_key, key, changes) if deep else None
    problem: str | None = None
    for piece in pieces:
        digest.update(piece)
        size += len(piece)
        if payload is not None and problem is None:
            try:
                payload.feed(piece)
            except BackupError as exc:
                problem = str(exc)
    if payload is not None and problem is None:
        try:
            payload.finish()
        except BackupError as exc:
            problem = str(exc)
    rows = payload.rows if payload is not None and problem is None else None
    return ObjectFacts(digest.hexdigest(), size, rows, problem)
