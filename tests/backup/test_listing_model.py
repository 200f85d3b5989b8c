"""Model-based: the index-backed listing of a stage says exactly what a full listing says, whatever
happens between: units shipped, a run killed at any write, prune killed at any delete, the index
deleted (rebuild), and an attacker with bucket access but no key putting back an older index,
copying another stage's, or planting an unsealed or wrongly keyed one.

The steps run the same functions a run and prune run (list_stages, remove_orphans, push with the
listing, release; plan and apply_prune), against a real spool and real stages (file://, and S3
over HTTP), with no PostgreSQL: units are made in the spool directly. A kill is a repository
that dies at its n-th write or delete. Every state between two writes is also what a reader
running beside a run (list, verify, console: they take no lock) can see, so checking after each
kill covers them; two runs never overlap (the backup lock; test_kill and test_stages cover it).

Bounded in the default run; VAXVAULT_SOAK_EXAMPLES=N runs N examples per backend.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from backup.errors import StorageError
from backup.listing import INDEX, Listing, full_listing, list_stage, units_of
from backup.prune import apply_prune, plan_prune, stored_units
from backup.restore.errors import RestorePlanError
from backup.restore.source import choose
from backup.runner import _newest_segment, list_stages, missing_base
from backup.stages import Stage, committed_units, push, release, remove_orphans, remove_unit
from backup.storage import codec, keys
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.index import INDEX_KEY, SegmentEntry, StageIndex, encode_index, repository_name
from backup.storage.manifest import ObjectRef, SegmentManifest, SnapshotManifest, encode_manifest
from backup.storage.reader import (
    history_from,
    list_segments,
    list_snapshots,
    read_segment_manifest,
    read_snapshot,
)
from backup.storage.repository import ObjectInfo, Repository, open_repository
from backup.verify import verify

SOAK = int(os.environ.get("VAXVAULT_SOAK_EXAMPLES", "0"))
KEY = Key(os.urandom(32))
OTHER_KEY = Key(os.urandom(32))
START = datetime(2026, 1, 1, tzinfo=UTC)


class Killed(Exception):
    """The process died here. Not a StorageError, so nothing in backup/ catches it."""


class Dying:
    """A real repository that dies at its n-th write or delete (None: never)."""

    def __init__(self, repo: Repository, budget: int | None) -> None:
        self.repo, self.url, self.budget = repo, repo.url, budget

    def _spend(self) -> None:
        if self.budget is not None:
            if self.budget <= 0:
                raise Killed
            self.budget -= 1

    def put(self, key: str, data: bytes) -> None:
        self._spend()
        self.repo.put(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self._spend()
        self.repo.put_file(key, path)

    def delete(self, key: str) -> None:
        self._spend()
        self.repo.delete(key)

    def get(self, key: str) -> bytes:
        return self.repo.get(key)

    def stream(self, key: str) -> Iterator[bytes]:
        return self.repo.stream(key)

    def head(self, key: str) -> ObjectInfo | None:
        return self.repo.head(key)

    def list(self, prefix: str = "", start_after: str = "") -> list[ObjectInfo]:
        return self.repo.list(prefix, start_after)

    def clean_incomplete(self, prefix: str = "", start_after: str = "") -> int:
        return self.repo.clean_incomplete(prefix, start_after)


def _every_manifest(repo: Repository) -> tuple[list[SnapshotManifest], list[SegmentManifest]]:
    """What restore read before it used the index: every manifest a full key listing finds."""
    ids = {kind: sorted(i for (k, i), done in units_of(repo.list()).items() if k == kind and done)
           for kind in ("snapshot", "segment")}
    return ([read_snapshot(repo, i, KEY) for i in ids["snapshot"]],
            [read_segment_manifest(repo, i, KEY) for i in ids["segment"]])


def _chosen(snapshots: list[SnapshotManifest], segments: list[SegmentManifest], as_of: datetime) -> object:
    try:
        return choose(snapshots, segments, as_of)
    except RestorePlanError as exc:
        return str(exc)


def _same(via_index: Listing, full: Listing) -> None:
    assert via_index.entries == full.entries
    assert via_index.refused == full.refused
    assert via_index.partial == full.partial
    assert _newest_segment(via_index) == _newest_segment(full)  # what a run cuts from


class ListingMachine(RuleBasedStateMachine):
    make_stages: ClassVar[object]
    seen: ClassVar[dict[str, int]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.spool = FileRepository(Path(self.spool_root()) / uuid.uuid4().hex)
        self.targets: list[tuple[str, Repository]] = self.make_stages()  # type: ignore[operator]
        self.clock = 0
        self.position = 1
        self.versions: dict[str, list[bytes]] = {name: [] for name, _ in self.targets}
        self.planted: dict[str, bytes] = {}

    @staticmethod
    def spool_root() -> str:
        raise NotImplementedError

    def _count(self, what: str) -> None:
        self.seen[what] = self.seen.get(what, 0) + 1

    def _next_id(self) -> tuple[str, datetime]:
        self.clock += 1
        at = START + timedelta(minutes=self.clock)
        return keys.format_id(at), at

    def _put_object(self, object_key: str, payload: bytes) -> ObjectRef:
        data = codec.encode(payload, object_key, KEY)
        self.spool.put(object_key, data)
        return ObjectRef(object_key, codec.sha256(data), len(data))

    @rule(kind=st.sampled_from(["segment", "snapshot"]))
    def cut(self, kind: str) -> None:
        """A run's cut: one unit committed in the spool (manifest last)."""
        unit_id, at = self._next_id()
        position = f"{self.position}:{self.position}:"
        manifest: SnapshotManifest | SegmentManifest
        if kind == "snapshot":
            schema = self._put_object(keys.format_schema_key(unit_id), b"-- schema")
            manifest = SnapshotManifest(id=unit_id, cut_at=at, position=position, database="db",
                                        server_version="17", encryption_key_id=KEY.id, schema=schema,
                                        tables=())
        else:
            self.position += 1
            changes = self._put_object(keys.format_segment_changes_key(unit_id), b"")
            manifest = SegmentManifest(
                id=unit_id, cut_at=at, from_position=position,
                to_position=f"{self.position}:{self.position}:", changes=0, first_position=None,
                last_position=None, first_committed_at=None, last_committed_at=None, tables=(),
                encryption_key_id=KEY.id, object=changes)
        object_key = keys.format_snapshot_manifest_key(unit_id) if kind == "snapshot" \
            else keys.format_segment_manifest_key(unit_id)
        self.spool.put(object_key, encode_manifest(manifest, object_key, KEY))

    # None: a run nothing kills. Half the runs finish, so a short bounded run reaches finished
    # runs as surely as killed ones (with budgets alone, 5 examples once finished none).
    @rule(stage=st.integers(0, 1), budget=st.none() | st.integers(0, 6))
    def ship(self, stage: int, budget: int | None) -> None:
        """The storage half of a run (runner.run_backup), killed at the `budget`-th write of one stage."""
        stages = [Stage("spool", self.spool)] + [Stage(name, Dying(repo, budget if n == stage else None))
                                                 for n, (name, repo) in enumerate(self.targets)]
        failures: dict[str, str] = {}
        try:
            listings = list_stages(stages, KEY, failures)
            assert not failures
            for target in stages[1:]:
                remove_orphans(target.repo, listings[target.name])
            missing_base(listings, stages[1:])
            for target in stages[1:]:
                push(self.spool, target, KEY, None, listings[target.name])
            release(self.spool, stages[1:], listings)
            self._count("runs")
            # Every stage took or passed over each spool unit, so the spool keeps nothing: a unit
            # passed over at a stage (pruned there) must not stay in the spool forever.
            assert committed_units(self.spool) == []
        except Killed:
            self._count("killed runs")

    @rule(stage=st.integers(0, 1), keep_full=st.integers(1, 3), budget=st.integers(0, 8))
    def prune(self, stage: int, keep_full: int, budget: int) -> None:
        """prune.prune at one stage, killed at the `budget`-th delete or write."""
        name, repo = self.targets[stage]
        listing = list_stage(repo, KEY)
        plan = plan_prune(stored_units(listing), keep_full, 0, START + timedelta(days=365))
        try:
            apply_prune(Stage(name, Dying(repo, budget)), plan, listing, KEY)
            self._count("prunes")
        except Killed:
            self._count("killed prunes")

    @rule(stage=st.integers(0, 1), data=st.data(),
          how=st.sampled_from(["rebuild", "replay", "foreign", "unsealed", "other key"]))
    def tamper(self, stage: int, how: str, data: st.DataObject) -> None:
        if how == "rebuild":
            self.rebuild(stage)
        elif how == "replay":
            self.replay(stage, data)
        else:
            self.plant(stage, how)

    @rule(stage=st.integers(0, 1), budget=st.integers(0, 6))
    def ship_again(self, stage: int, budget: int) -> None:
        """Runs are the common step."""
        self.ship(stage, budget)

    def rebuild(self, stage: int) -> None:
        """An operator deletes the index (verify's advice): the next run rebuilds it."""
        self.targets[stage][1].delete(INDEX_KEY)

    def replay(self, stage: int, data: st.DataObject) -> None:
        """An attacker (or a backup of the bucket) puts back an older index of this stage."""
        name, repo = self.targets[stage]
        if self.versions[name]:
            repo.put(INDEX_KEY, data.draw(st.sampled_from(self.versions[name])))
            self._count("replays")

    def plant(self, stage: int, how: str) -> None:
        """An index the reader must refuse, each made to hide units if it were believed: the other
        stage's own index (sealed with the same key; the stages share ids), or one that claims
        only this stage's newest units and one it never held, written without the key or sealed
        with another key."""
        name, repo = self.targets[stage]
        other_name, other = self.targets[1 - stage]
        if how == "foreign":
            if other.head(INDEX_KEY) is None or other.get(INDEX_KEY) == self.planted.get(other_name):
                return  # none, or this stage's own index planted there
            data = other.get(INDEX_KEY)
        else:
            held = full_listing(repo, KEY).entries
            newest = [max((e for e in held.values() if e.kind == kind), key=lambda e: e.id)
                      for kind in ("snapshot", "segment") if any(e.kind == kind for e in held.values())]
            invented = SegmentEntry(keys.format_id(START), 0, 0, "1:1:", "2:2:")
            data = encode_index(StageIndex(repository_name(repo.url), (invented, *newest)),
                                None if how == "unsealed" else OTHER_KEY)
        repo.put(INDEX_KEY, data)
        self.planted[name] = data
        self._count(f"planted {how}")

    @invariant()
    def index_answers_what_a_full_listing_answers(self) -> None:
        for name, repo in self.targets:
            via_index, full = list_stage(repo, KEY), full_listing(repo, KEY)
            _same(via_index, full)
            # Restore reads through the index too (storage/reader.py): the same history at any T.
            for as_of in {START + timedelta(minutes=m) for m in (self.clock // 2, self.clock)}:
                assert _chosen(*history_from(repo, as_of, KEY), as_of) == \
                    _chosen(*_every_manifest(repo), as_of)
            assert (list_snapshots(repo, KEY), list_segments(repo, KEY)) == _every_manifest(repo)
            self._count("checks from the index" if via_index.source == INDEX else "checks in full")
            current = repo.head(INDEX_KEY) and repo.get(INDEX_KEY)
            if current and current != self.planted.get(name) and current not in self.versions[name]:
                self.versions[name].append(current)
            problems = [p for p in verify([Stage(name, repo)], key=KEY).problems if p.key == INDEX_KEY]
            if current and current == self.planted.get(name):
                assert problems and "refused" in problems[0].reason, problems
                self._count("planted indexes refused")
            else:
                assert problems == []


def _run(machine: type[ListingMachine], examples: int) -> None:
    machine.seen = {}
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=30 if SOAK else 15, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), print_blob=True))
    print(f"listing model: {machine.seen}")
    # The examples must reach what they are for: answers from the index, kills, refusals.
    for what in ("checks from the index", "runs"):
        assert machine.seen.get(what, 0) > 0, machine.seen
    # Some write killed, in a run or a prune (25 examples once killed no run: a ship with nothing
    # left to push writes nothing; the kills of a run are also pinned by the example test below).
    if examples >= 20:
        assert machine.seen.get("killed runs", 0) + machine.seen.get("killed prunes", 0) > 0, machine.seen


def test_listing_matches_a_full_listing_on_file(tmp_path: Path) -> None:
    class OnFile(ListingMachine):
        @staticmethod
        def spool_root() -> str:
            return str(tmp_path)

    OnFile.make_stages = staticmethod(lambda: [
        (name, open_repository((tmp_path / uuid.uuid4().hex).as_uri())) for name in ("primary", "replica-1")])
    _run(OnFile, SOAK or 25)


def test_listing_matches_a_full_listing_on_s3(tmp_path: Path, s3_endpoint_url: str, s3_bucket: str) -> None:
    class OnS3(ListingMachine):
        @staticmethod
        def spool_root() -> str:
            return str(tmp_path)

    OnS3.make_stages = staticmethod(lambda: [
        (name, open_repository(f"s3://{s3_bucket}/{uuid.uuid4().hex}?endpoint={s3_endpoint_url}"))
        for name in ("primary", "replica-1")])
    _run(OnS3, SOAK or 5)


def _machine_on_file(tmp_path: Path) -> ListingMachine:
    """One machine, driven step by step: stages "primary" and "replica-1" under tmp_path."""
    class Machine(ListingMachine):
        @staticmethod
        def spool_root() -> str:
            return str(tmp_path)

    Machine.make_stages = staticmethod(lambda: [
        (name, open_repository((tmp_path / name).as_uri())) for name in ("primary", "replica-1")])
    return Machine()


@pytest.mark.parametrize("how", ["foreign", "unsealed", "other key"])
def test_the_checks_have_teeth(tmp_path: Path, how: str) -> None:
    """Without its checks, each planted index would hide units: so the model's refusals are real."""
    m = _machine_on_file(tmp_path)
    m.cut("snapshot")
    m.cut("segment")
    m.ship(0, None)
    repo = m.targets[0][1]
    assert list_stage(repo, KEY).source == INDEX and len(list_stage(repo, KEY).entries) == 2
    m.plant(0, how)
    listing = list_stage(repo, KEY)
    assert listing.source != INDEX and listing.index_refused
    assert len(listing.entries) == 2
    m.teardown()


@pytest.mark.parametrize("budget", range(0, 5))
def test_a_unit_pushed_again_after_prune_is_never_hidden(tmp_path: Path, budget: int) -> None:
    """Found by the S3 model in a shuffled run: prune removes an old segment from one stage while
    the spool still holds it (another stage lacked it), a later run pushes it back there, out of
    id order, and is killed before it rewrites the index. The tail check (units after the index's
    newest) cannot see such a unit, so the run must drop the index before that commit."""
    m = _machine_on_file(tmp_path)
    m.cut("segment")
    m.cut("snapshot")
    for _ in range(3):
        m.cut("segment")
    m.ship(1, 6)  # the primary takes all; the replica dies after three units: the spool keeps all
    m.prune(1, 2, 8)  # the replica drops the segment older than its only full snapshot
    m.index_answers_what_a_full_listing_answers()
    m.ship(1, budget)  # the old segment goes back to the replica, which dies part-way
    m.index_answers_what_a_full_listing_answers()


def test_an_index_put_back_after_a_pruned_unit_came_back_hides_nothing(tmp_path: Path) -> None:
    """The residual of the case above: an attacker puts back the index written between the prune
    and the run that followed it. Had that run pushed the pruned segment back (out of id order),
    the old index (its anchors all stored, the segment older than its newest) would hide it. Push
    passes the segment over instead (the replica's snapshot contains it) and the spool lets it go."""
    m = _machine_on_file(tmp_path)
    m.cut("segment")
    m.cut("snapshot")
    for _ in range(3):
        m.cut("segment")
    m.ship(1, 6)
    m.prune(1, 2, 8)
    m.index_answers_what_a_full_listing_answers()  # records the index written by prune
    after_prune = m.versions["replica-1"][-1]
    m.ship(1, None)  # a run that finishes
    m.index_answers_what_a_full_listing_answers()
    m.targets[1][1].put(INDEX_KEY, after_prune)
    m.index_answers_what_a_full_listing_answers()
    assert committed_units(m.spool) == []
    m.teardown()


def test_a_lacking_unit_the_stage_still_needs_is_refused_not_pushed_out_of_order(tmp_path: Path) -> None:
    """A segment deleted from the middle of a stage's history (newer than its snapshot) while the
    spool still holds it: pushing it back would be an out-of-order commit an old index could hide,
    and passing it over would lose its changes there. The run reports it and the spool keeps it;
    a full snapshot that contains it ends that."""
    m = _machine_on_file(tmp_path)
    m.cut("snapshot")
    for _ in range(3):
        m.cut("segment")
    m.ship(1, 0)  # the primary takes all, the replica nothing: the spool keeps all
    primary = m.targets[0][1]
    middle = sorted(i for k, i in committed_units(primary) if k == "segment")[1]
    remove_unit(primary, "segment", middle)
    primary.delete(INDEX_KEY)  # else the index still lists it (verify's case, test_listing.py)
    stage = Stage("primary", primary)
    with pytest.raises(StorageError, match=f"segment {middle}.*backup run --full"):
        push(m.spool, stage, KEY, None, list_stage(primary, KEY))
    assert ("segment", middle) in committed_units(m.spool)
    assert ("segment", middle) not in committed_units(primary)
    m.index_answers_what_a_full_listing_answers()
    m.cut("snapshot")
    m.ship(0, None)  # the new snapshot contains the segment: passed over, and the spool lets it go
    assert ("segment", middle) not in committed_units(primary)
    m.index_answers_what_a_full_listing_answers()
    m.teardown()
