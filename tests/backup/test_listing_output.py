"""`backup list` prints the same number of lines whatever the history: per stage its counts, totals
and ends, then the newest units; `--all` prints every unit. Real stages on file:// (the listing
model's machine makes the units), one of them unreachable."""

from __future__ import annotations

import json
from pathlib import Path

from api.cli.backup_list import list_output
from backup.inventory import ORPHAN, PENDING, STORED, UNREACHABLE
from backup.stages import Stage, committed_units, remove_unit
from backup.storage.repository import open_repository
from tests.backup.test_listing_model import KEY, ListingMachine, _machine_on_file


def _stages(m: ListingMachine, tmp_path: Path) -> list[Stage]:
    gone = open_repository((tmp_path / "gone").as_uri())
    (tmp_path / "gone").write_text("a file where a directory should be: cannot be listed")
    return [Stage("spool", m.spool), *(Stage(n, r) for n, r in m.targets), Stage("replica-2", gone)]


def test_list_is_a_fixed_size_whatever_the_history(tmp_path: Path) -> None:
    m = _machine_on_file(tmp_path)
    sizes = {}
    for rounds in (5, 30):
        for n in range(rounds):
            m.cut("snapshot" if n % 10 == 0 else "segment")
        m.ship(1, 0)  # the primary takes all, the replica nothing: the spool keeps them
        text, data = list_output(_stages(m, tmp_path), KEY, every=False, last=4)
        sizes[rounds] = len(text.splitlines())
        assert len(data["units"]) == 4 and json.loads(json.dumps(data, default=str))
    assert sizes[5] == sizes[30]
    spool, primary, replica, gone = data["stages"]
    assert data["total_units"] == 35
    assert primary["snapshots"] == 4 and primary["segments"] == 31 and primary["source"] == "index"
    assert primary["counts"] == {STORED: 35} and spool["counts"] == {PENDING: 35}
    assert replica["counts"] == {} and replica["newest_segment"] is None
    assert not gone["reachable"]
    newest = data["units"][-1]
    assert newest["id"] == primary["newest_segment"]
    assert newest["states"] == {"spool": PENDING, "primary": STORED, "replica-1": "missing",
                                "replica-2": UNREACHABLE}
    text, every = list_output(_stages(m, tmp_path), KEY, every=True)
    assert len(every["units"]) == 35 and "every unit" in text
    assert [u["id"] for u in every["units"]][-4:] == [u["id"] for u in data["units"]]
    m.teardown()


def test_orphans_are_counted_per_stage(tmp_path: Path) -> None:
    m = _machine_on_file(tmp_path)
    m.cut("snapshot")
    m.cut("segment")
    m.cut("segment")
    m.ship(0, None)
    primary = m.targets[0][1]
    first = sorted(i for k, i in committed_units(primary) if k == "segment")[0]
    remove_unit(primary, "segment", first)  # a hole: the next segment restores nothing there
    _, data = list_output(_stages(m, tmp_path), KEY, every=False)
    assert data["stages"][1]["counts"] == {STORED: 1, ORPHAN: 1}
    assert [u["states"]["primary"] for u in data["units"]] == [STORED, "missing", ORPHAN]
    m.teardown()
