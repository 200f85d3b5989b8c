"""Turn segments of a repository back into format 2.0 (JSON lines only, no typed images), as a
vaxvault before 2.1 wrote them: restore must read such repositories as it always did."""

from __future__ import annotations

from dataclasses import replace

from backup.storage import keys
from backup.storage.codec import Key
from backup.storage.manifest import encode_manifest
from backup.storage.reader import list_segments
from backup.storage.repository import Repository


def as_format_2_0(repo: Repository, key: Key | None, segment_ids: set[str] | None = None) -> int:
    """Drop the images of every committed segment of `repo` (or of those in `segment_ids`) and
    mark its manifest 2.0; return how many segments had images."""
    changed = 0
    for segment in list_segments(repo, key):
        if not segment.images or (segment_ids is not None and segment.id not in segment_ids):
            continue
        for image in segment.images:
            repo.delete(image.object.key)
        manifest_key = keys.format_segment_manifest_key(segment.id)
        old = replace(segment, images=(), format_version="2.0")
        repo.put(manifest_key, encode_manifest(old, manifest_key, key))
        changed += 1
    return changed
