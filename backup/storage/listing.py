"""What one stage holds, at a cost that does not grow with its history (restore reads stages
through it too, which is why it lives in storage; backup/listing.py is the orchestration's door).

`list_stage` answers from the stage's listing index (storage/index.py) when the index passes
three checks, and from a full listing (every key, every manifest) when it does not:

1. It opens with the key and names this repository (else: forged, unsealed, foreign -> full).
2. Anchors: the manifests of its oldest and newest snapshot and segment still exist. Prune deletes
   the oldest units only (a prefix of each kind), so an index that lists a deleted unit (a crash
   between prune's deletes and its index write, or an older index put back) lists a deleted
   oldest unit, and fails here -> full.
3. Tail: units commit at a stage in id order (push ships the spool oldest first; ids are cut
   times), so everything committed after the index was written sorts after its newest unit of that
   kind. Those keys are listed (`start_after`) and their manifests read, and joined to the answer:
   a stale index (a crash between a commit and the index write, or an older index put back)
   hides nothing. Push never commits out of order (stages.push): a unit prune removed from this
   stage while the spool kept it for another stage is passed over, not pushed back, and any other
   unit older than the stage's newest of its kind stays in the spool with an error. So no index
   ever written, replayed or not, can list a newer unit of a kind and lack a stored one.

What this cannot see: a unit deleted from the middle of the history by hand or by an attacker
(the index still lists it; a restore that reads it fails with "missing", and `backup verify`,
which lists in full, reports the index as disagreeing). Only writers holding the backup lock (a
run, prune) write an index; readers never do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backup.errors import BackupError, FormatError, ObjectNotFound
from backup.storage import keys
from backup.storage.codec import Key
from backup.storage.index import (
    INDEX_KEY,
    Entry,
    StageIndex,
    UnitRef,
    decode_index,
    encode_index,
    entry_of,
    repository_name,
)
from backup.storage.manifest import decode_manifest
from backup.storage.repository import ObjectInfo, Repository

FULL = "full"
INDEX = "index"
# Sorts after every key inside a unit's folder ("snapshots/<id>/" + anything printable).
_PAST_UNIT = "\x7f"


@dataclass
class Listing:
    """The units of one stage. source: INDEX (checked index plus its tail) or FULL; reason: why a
    full listing was needed; tail: units found after the index (the index is stale when > 0)."""

    entries: dict[UnitRef, Entry]
    refused: dict[UnitRef, str]
    partial: set[UnitRef]
    source: str
    reason: str = ""
    tail: int = 0
    removed: set[UnitRef] = field(default_factory=set)
    # Why a stored index was refused (forged, unsealed, another repository's): for `backup verify`.
    index_refused: str = ""
    # (prefix, start_after) of each key range read after the index (nothing when listed in full):
    # where a killed run can have left anything.
    tail_ranges: tuple[tuple[str, str], ...] = ()
    # Spool units this stage lacks and no longer needs (stages.push): release counts them as held.
    passed_over: set[UnitRef] = field(default_factory=set)

    def committed(self) -> set[UnitRef]:
        """Every unit whose manifest is stored (readable with the key or refused)."""
        return set(self.entries) | set(self.refused)

    def newest(self, kind: str) -> UnitRef | None:
        newest = max((i for k, i in (*self.entries, *self.refused) if k == kind), default=None)
        return (kind, newest) if newest is not None else None

    def add(self, entry: Entry) -> None:
        self.entries[(entry.kind, entry.id)] = entry
        self.partial.discard((entry.kind, entry.id))

    def drop(self, unit: UnitRef) -> None:
        self.entries.pop(unit, None)
        self.refused.pop(unit, None)
        self.partial.discard(unit)
        self.removed.add(unit)

    def stale(self) -> bool:
        """Whether the stored index no longer says what this listing says."""
        return self.source != INDEX or self.tail > 0 or bool(self.removed)


def units_of(infos: list[ObjectInfo]) -> dict[UnitRef, bool]:
    """(kind, id) -> committed? for the unit keys among `infos`."""
    units: dict[UnitRef, bool] = {}
    for info in infos:
        try:
            parsed = keys.parse_key(info.key)
        except FormatError:
            continue
        unit = (parsed.kind, parsed.id)
        units[unit] = units.get(unit, False) or parsed.part == "manifest"
    return units


def _manifest_key(unit: UnitRef) -> str:
    kind, unit_id = unit
    return (keys.format_snapshot_manifest_key(unit_id) if kind == "snapshot"
            else keys.format_segment_manifest_key(unit_id))


def _read(repo: Repository, units: dict[UnitRef, bool], key: Key | None, listing: Listing) -> None:
    """Put each unit into `listing`: an entry from its manifest, refused, or partial."""
    for unit, committed in sorted(units.items(), key=lambda u: (u[0][1], u[0][0])):
        if not committed:
            listing.partial.add(unit)
            continue
        object_key = _manifest_key(unit)
        try:
            listing.entries[unit] = entry_of(
                decode_manifest(repo.get(object_key), object_key, key, f"{repo.url}/{object_key}"))
        except ObjectNotFound:
            listing.partial.add(unit)  # deleted since it was listed (a prune going on)
        except BackupError as exc:  # unreadable, or not authenticated with the key
            listing.refused[unit] = str(exc)


def full_listing(repo: Repository, key: Key | None, reason: str = "") -> Listing:
    """Every key of the stage and every manifest: what the index is checked against.
    Raises StorageError when the stage cannot be listed."""
    listing = Listing({}, {}, set(), FULL, reason)
    _read(repo, units_of(repo.list()), key, listing)
    return listing


def _anchors(index: StageIndex) -> list[UnitRef]:
    units = [(e.kind, e.id) for e in index.entries] + [(k, i) for k, i, _ in index.refused]
    anchors = []
    for kind in ("snapshot", "segment"):
        ids = sorted(i for k, i in units if k == kind)
        anchors += [(kind, i) for i in {ids[0], ids[-1]}] if ids else []
    return anchors


def list_stage(repo: Repository, key: Key | None) -> Listing:
    """The stage's units, from its index when the index checks out (module docstring), else in
    full. Raises StorageError when the stage cannot be reached at all."""
    try:
        data = repo.get(INDEX_KEY)
    except ObjectNotFound:
        return full_listing(repo, key, "no index")
    try:
        index = decode_index(data, key, repo.url)
    except BackupError as exc:  # forged, unsealed, another repository's, or a newer format
        listing = full_listing(repo, key, f"index refused: {exc}")
        listing.index_refused = str(exc)
        return listing
    for unit in _anchors(index):
        if repo.head(_manifest_key(unit)) is None:
            return full_listing(repo, key, f"index lists {unit[0]} {unit[1]}, which is not stored "
                                           "(pruned since, or an older index put back)")
    listing = Listing({(e.kind, e.id): e for e in index.entries},
                      {(k, i): why for k, i, why in index.refused}, set(), INDEX)
    tail: dict[UnitRef, bool] = {}
    ranges = []
    for kind, root in (("snapshot", keys.SNAPSHOTS), ("segment", keys.SEGMENTS)):
        newest = listing.newest(kind)
        ranges.append((f"{root}/", f"{root}/{newest[1]}/{_PAST_UNIT}" if newest else ""))
        tail.update(units_of(repo.list(*ranges[-1])))
    _read(repo, tail, key, listing)
    listing.tail = len(tail)
    listing.tail_ranges = (*ranges, (INDEX_KEY, ""))
    return listing


def write_index(repo: Repository, listing: Listing, key: Key | None) -> None:
    """Store `listing` as the stage's index (sealed with `key`). Only under the backup lock.
    Raises StorageError when it cannot be written; the old index stays and is merely stale."""
    index = StageIndex(repository_name(repo.url),
                       tuple(sorted(listing.entries.values(), key=lambda e: (e.id, e.kind))),
                       tuple(sorted((k, i, why) for (k, i), why in listing.refused.items())))
    repo.put(INDEX_KEY, encode_index(index, key))
