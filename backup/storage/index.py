"""The listing index of one stage (`index.json` at the repository root): every committed unit with
what `backup list` and a run need from its manifest, so neither lists the stage in full nor reads
every manifest. It is a cache, never the truth: see backup/storage/listing.py for how a reader checks it.

With a key the index is sealed like a manifest (AES-256-GCM bound to its object key), so only a
holder of the key can write one; it also names the repository it describes, so a sealed index
copied from another stage or repository is refused. Without a key it is as unauthenticated as the
manifests themselves. It carries no date bounds of personal columns, only ids, sizes and positions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from backup.errors import FormatError
from backup.storage import codec
from backup.storage.codec import Key
from backup.storage.manifest import SegmentManifest, SnapshotManifest

INDEX_KEY = "index.json"
INDEX_FORMAT = 1

UnitRef = tuple[str, str]  # (kind, id)


@dataclass(frozen=True)
class SnapshotEntry:
    """A committed snapshot as the index records it (chain.py reads position and continues)."""

    id: str
    rows: int
    bytes: int
    position: str
    continues: str | None = None
    kind: str = "snapshot"


@dataclass(frozen=True)
class SegmentEntry:
    """A committed segment as the index records it; rows are its changes."""

    id: str
    rows: int
    bytes: int
    from_position: str
    to_position: str
    kind: str = "segment"


Entry = SnapshotEntry | SegmentEntry


@dataclass(frozen=True)
class StageIndex:
    """The decoded index: committed units readable with the key, and those whose manifest was
    refused when the index was written (kind, id -> why), so a reader keeps reporting them."""

    repository: str
    entries: tuple[Entry, ...]
    refused: tuple[tuple[str, str, str], ...] = ()


def entry_of(manifest: SnapshotManifest | SegmentManifest) -> Entry:
    if isinstance(manifest, SnapshotManifest):
        return SnapshotEntry(manifest.id, sum(t.rows for t in manifest.tables),
                             sum(r.size for r in manifest.objects()), manifest.position, manifest.continues)
    return SegmentEntry(manifest.id, manifest.changes, manifest.object.size, manifest.from_position,
                        manifest.to_position)


def repository_name(url: str) -> str:
    """The repository an index belongs to: its URL without query (the endpoint may change)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def encode_index(index: StageIndex, key: Key | None) -> bytes:
    body = {"format": INDEX_FORMAT, "kind": "index", "repository": index.repository,
            "units": [asdict(e) for e in index.entries],
            "refused": [list(r) for r in index.refused]}
    return codec.encode(json.dumps(body, sort_keys=True).encode(), INDEX_KEY, key)


def decode_index(data: bytes, key: Key | None, url: str) -> StageIndex:
    """Inverse of encode_index for the repository at `url`. Raises DecryptionError when it is not
    sealed with `key`, FormatError when it is malformed, newer, or describes another repository."""
    what = f"{url}/{INDEX_KEY}"
    try:
        raw = json.loads(codec.decode(data, INDEX_KEY, key))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("kind") != "index":
        raise FormatError(f"{what} is not a vaxvault listing index")
    if raw.get("format") != INDEX_FORMAT:
        raise FormatError(f"{what} has index format {raw.get('format')!r}; "
                          f"this vaxvault reads {INDEX_FORMAT}")
    if raw.get("repository") != repository_name(url):
        raise FormatError(f"{what} describes {raw.get('repository')!r}, not this repository")
    try:
        entries: list[Entry] = []
        for unit in raw["units"]:
            if unit["kind"] == "snapshot":
                entries.append(SnapshotEntry(str(unit["id"]), int(unit["rows"]), int(unit["bytes"]),
                                             str(unit["position"]), unit["continues"]))
            elif unit["kind"] == "segment":
                entries.append(SegmentEntry(str(unit["id"]), int(unit["rows"]), int(unit["bytes"]),
                                            str(unit["from_position"]), str(unit["to_position"])))
            else:
                raise ValueError(f"unknown kind {unit['kind']!r}")
        refused = tuple((str(k), str(i), str(why)) for k, i, why in raw["refused"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{what} has a malformed unit: {exc}") from exc
    return StageIndex(raw["repository"], tuple(entries), refused)
