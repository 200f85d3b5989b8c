"""Restore reads a stage through its checked index (storage/reader.py): it lists no key of the
history before the index's newest units, and reads the manifests from the base snapshot on, so
what a restore as of a recent T reads does not grow with the history before it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from backup.storage.reader import history_from
from backup.storage.repository import ObjectInfo
from tests.backup.test_listing_model import KEY, START, Dying, _chosen, _every_manifest, _machine_on_file


class Counting(Dying):
    """A real repository that counts what is read from it."""

    def __init__(self, repo: Dying) -> None:
        super().__init__(repo.repo, None)
        self.gets, self.listed = 0, 0

    def get(self, key: str) -> bytes:
        self.gets += 1
        return super().get(key)

    def list(self, prefix: str = "", start_after: str = "") -> list[ObjectInfo]:
        found = super().list(prefix, start_after)
        self.listed += len(found)
        return found


def test_a_restore_reads_the_same_whatever_the_history_before_its_base(tmp_path: Path) -> None:
    m = _machine_on_file(tmp_path)
    reads = []
    for older in (2, 40):
        for n in range(older):
            m.cut("snapshot" if n % 10 == 0 else "segment")
        m.cut("snapshot")  # the base
        for _ in range(3):
            m.cut("segment")
        m.ship(1, 0)  # the primary takes all
        primary = Counting(Dying(m.targets[0][1], None))
        as_of = START + timedelta(minutes=m.clock)
        chosen = _chosen(*history_from(primary, as_of, KEY), as_of)
        reads.append((primary.gets, primary.listed))
        assert chosen == _chosen(*_every_manifest(m.targets[0][1]), as_of)
        assert len(chosen.segments) == 3  # type: ignore[attr-defined]
    # the index, the base and its three segments; no key listed (nothing after the index)
    assert reads[0] == reads[1] == (5, 0), reads
    m.teardown()
