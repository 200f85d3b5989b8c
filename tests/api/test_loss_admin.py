"""findLoss and privacyFreezes: the console's chart and freeze panel over GraphQL.

Real PostgreSQL and a real file:// repository; the chart's bucketing is checked as a model
(hypothesis) and the windows against `vaxvault restore find-loss --json` on the same repository.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api.cli import main
from api.domain.loss_admin import buckets
from api.settings import Settings
from backup.capture.triggers import install
from backup.restore.find_loss import signals_of
from backup.storage.change import Change, Op
from tests.api.client import Result, run
from tests.api.conftest import Cast

pytestmark = pytest.mark.slow

FIND_LOSS = """query Loss($since: DateTime, $until: DateTime, $bin: Float!) {
  findLoss(table: DOSES, since: $since, until: $until, binSeconds: $bin) { __typename
    ... on LossReport { table binSeconds unshippedChanges warnings
      buckets { start signal count setToNull }
      windows { signal start end count setToNull transactions proposedAsOf
                exampleKeys { column value } } }
    ... on RestoreNotConfigured { message } ... on OperationFailed { message } } }"""
START = "mutation($kind: BackupKind!) { startBackup(kind: $kind) { __typename } }"
FREEZE = """mutation($until: DateTime) { setPrivacyFreeze(scope: NATIONAL, reason: "leak", until: $until)
  { __typename } }"""


def _data(result: Result) -> dict[str, Any]:
    assert not result.errors, result.errors
    assert result.data is not None
    return result.data


@pytest.fixture
def admin_settings(seeded_settings: Settings, tmp_path: Path) -> Settings:
    return seeded_settings.with_overrides(backup_url=(tmp_path / "primary").as_uri(),
                                          backup_spool_dir=tmp_path / "spool")


_instants = st.datetimes(min_value=datetime(2021, 1, 1), max_value=datetime(2021, 1, 2),
                         timezones=st.just(UTC))
_changes = st.lists(st.builds(
    lambda i, at, op, nulled: Change(
        position=i, txid=i, committed_at=at, table="doses", op=op, key={"id": i},
        old={"id": i, "administered_on": "2021-01-01", "updated_at": "a"} if op != Op.INSERT
        else None,
        new={"id": i, "administered_on": None if nulled else "2021-01-03", "updated_at": "b"}
        if op in (Op.INSERT, Op.UPDATE) else None),
    st.integers(1, 10**6), _instants, st.sampled_from(list(Op)), st.booleans()), max_size=60)


@hypothesis_settings(max_examples=int(os.environ.get("VAXVAULT_HYPOTHESIS_EXAMPLES", "60")))
@given(changes=_changes, bin_seconds=st.sampled_from([1, 60, 300, 3600]))
def test_buckets_count_every_signal_once_in_its_bin(changes: list[Change], bin_seconds: int) -> None:
    size = timedelta(seconds=bin_seconds)
    chart = buckets(changes, size)
    expected: dict[str, int] = {}
    for change in changes:
        for signal, _ in signals_of(change):
            if signal.column != "updated_at":
                expected[signal.label] = expected.get(signal.label, 0) + 1
    totals: dict[str, int] = {}
    for bar in chart:
        totals[bar.signal] = totals.get(bar.signal, 0) + bar.count
        assert bar.count > 0 and 0 <= bar.set_to_null <= bar.count
        assert (bar.start - datetime(1970, 1, 1, tzinfo=UTC)) % size == timedelta(0)
    assert totals == expected
    for change in changes:
        labels = {s.label for s, _ in signals_of(change)} - {"update updated_at"}
        for label in labels:
            assert any(b.signal == label and b.start <= change.committed_at < b.start + size
                       for b in chart)
    assert [(b.start, b.signal) for b in chart] == sorted((b.start, b.signal) for b in chart)


async def _cli_find_loss(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    monkeypatch.setenv("VAXVAULT_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("VAXVAULT_BACKUP_URL", settings.backup_url or "")
    monkeypatch.setenv("VAXVAULT_STATE_DIR", str(settings.state_dir))
    capsys.readouterr()
    # The CLI runs its own event loop, so not on this test's.
    assert await asyncio.to_thread(main, ["restore", "find-loss", "--table", "doses", "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


async def test_find_loss_charts_a_lost_day_and_proposes_the_moment_before_it(
        pool: asyncpg.Pool, admin_settings: Settings, cast: Cast, owner: asyncpg.Connection,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    await install(owner)
    full = _data(await run(pool, admin_settings, cast.admin, START, {"kind": "FULL"}))
    assert full["startBackup"]["__typename"] == "BackupCompleted"
    day = await owner.fetchval("SELECT administered_on FROM doses GROUP BY 1 "
                               "ORDER BY count(*) DESC LIMIT 1")
    before = await owner.fetchval("SELECT clock_timestamp()")
    await asyncio.sleep(0.01)
    deleted = await owner.fetch("DELETE FROM doses WHERE administered_on = $1 RETURNING id", day)
    assert len(deleted) >= 20, "the seed should have a busy day to lose"
    # Before any incremental ships it, the loss is already on the chart (from the live log).
    unshipped = _data(await run(pool, admin_settings, cast.admin, FIND_LOSS,
                                {"since": None, "bin": 60.0}))["findLoss"]
    assert unshipped["unshippedChanges"] == len(deleted) and unshipped["warnings"] == []
    assert sum(b["count"] for b in unshipped["buckets"] if b["signal"] == "delete") == len(deleted)
    _data(await run(pool, admin_settings, cast.admin, START, {"kind": "INCREMENTAL"}))

    found = _data(await run(pool, admin_settings, cast.admin, FIND_LOSS,
                            {"since": None, "bin": 60.0}))["findLoss"]
    assert found["__typename"] == "LossReport", found
    assert found["unshippedChanges"] == 0
    assert found["windows"] == unshipped["windows"]
    deletes = [b for b in found["buckets"] if b["signal"] == "delete"]
    assert sum(b["count"] for b in deletes) == len(deleted)
    top = found["windows"][0]
    assert (top["signal"], top["count"], top["transactions"]) == ("delete", len(deleted), 1)
    proposed = datetime.fromisoformat(top["proposedAsOf"])
    assert before < proposed < datetime.fromisoformat(top["start"])
    assert {int(k[0]["value"]) for k in top["exampleKeys"]} <= {r["id"] for r in deleted}

    cli = await _cli_find_loss(admin_settings, monkeypatch, capsys)
    assert [(w["signal"], w["count"], datetime.fromisoformat(w["proposed_as_of"]))
            for w in cli["windows"]] == \
        [(w["signal"], w["count"], datetime.fromisoformat(w["proposedAsOf"]))
         for w in found["windows"]]

    later = _data(await run(pool, admin_settings, cast.admin, FIND_LOSS,
                            {"since": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                             "bin": 60.0}))["findLoss"]
    assert later["buckets"] == [] and later["windows"] == []


async def test_find_loss_reports_rows_gone_between_snapshots_with_no_segment_between(
        pool: asyncpg.Pool, admin_settings: Settings, cast: Cast, owner: asyncpg.Connection,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows deleted while nothing captured them (capture's triggers off for the session): no
    change, no segment, only two snapshots whose row counts differ. findLoss says so, as the
    CLI does, and proposes the earlier snapshot's cut."""
    await install(owner)
    first = _data(await run(pool, admin_settings, cast.admin, START, {"kind": "FULL"}))
    assert first["startBackup"]["__typename"] == "BackupCompleted"
    await owner.execute("SET session_replication_role = replica")
    gone = await owner.fetch("DELETE FROM doses WHERE id IN (SELECT id FROM doses ORDER BY id "
                             "LIMIT 25) RETURNING id")
    await owner.execute("RESET session_replication_role")
    second = _data(await run(pool, admin_settings, cast.admin, START, {"kind": "FULL"}))
    assert second["startBackup"]["__typename"] == "BackupCompleted"

    found = _data(await run(pool, admin_settings, cast.admin, FIND_LOSS,
                            {"since": None, "bin": 60.0}))["findLoss"]
    assert found["__typename"] == "LossReport", found
    assert found["buckets"] == []  # nothing in any change log
    [window] = found["windows"]
    assert (window["signal"], window["count"], window["exampleKeys"]) == (
        "rows gone between snapshots (segments missing)", len(gone), [])
    assert window["proposedAsOf"] == window["start"] < window["end"]
    cli = await _cli_find_loss(admin_settings, monkeypatch, capsys)
    assert [(w["signal"], w["count"], datetime.fromisoformat(w["proposed_as_of"]))
            for w in cli["windows"]] == \
        [(window["signal"], window["count"], datetime.fromisoformat(window["proposedAsOf"]))]
    # A window after both snapshots leaves it out.
    later = _data(await run(pool, admin_settings, cast.admin, FIND_LOSS,
                            {"since": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                             "bin": 60.0}))["findLoss"]
    assert later["windows"] == []


@pytest.mark.parametrize(("variables", "names"), [
    ({"bin": 0.0}, "binSeconds: 0 is not positive"),
    ({"bin": -60.0}, "binSeconds: -60 is not positive"),
    ({"since": "2021-01-01T00:00:00Z", "until": "2021-01-02T00:00:00Z", "bin": 1.0},
     "more than 2000 bars"),
    ({"since": "2021-01-02T00:00:00Z", "until": "2021-01-01T00:00:00Z", "bin": 60.0},
     "is after until"),
])
async def test_find_loss_refuses_a_bad_bin_by_name(
        pool: asyncpg.Pool, admin_settings: Settings, cast: Cast, variables: dict[str, Any],
        names: str) -> None:
    result = await run(pool, admin_settings, cast.admin, FIND_LOSS, variables)
    assert result.codes() == {"findLoss": "BAD_USER_INPUT"}, result.errors
    assert names in result.errors[0]["message"]


async def test_find_loss_without_a_repository_says_so(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast) -> None:
    found = _data(await run(pool, seeded_settings, cast.admin, FIND_LOSS,
                            {"since": None, "bin": 60.0}))["findLoss"]
    assert found["__typename"] == "RestoreNotConfigured"
    assert "VAXVAULT_BACKUP_URL" in found["message"]


async def test_privacy_freezes_lists_the_freeze_in_force_until_lifted(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast) -> None:
    listing = "{ privacyFreezes { districtId active until reason } }"
    assert _data(await run(pool, seeded_settings, cast.admin, listing)) == {"privacyFreezes": []}
    until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    _data(await run(pool, seeded_settings, cast.admin, FREEZE, {"until": until.isoformat()}))
    frozen = _data(await run(pool, seeded_settings, cast.admin, listing))["privacyFreezes"]
    assert len(frozen) == 1
    assert (frozen[0]["districtId"], frozen[0]["reason"]) == (None, "leak")
    assert datetime.fromisoformat(frozen[0]["until"]) == until
    _data(await run(pool, seeded_settings, cast.admin, FREEZE, {"until": None}))
    assert _data(await run(pool, seeded_settings, cast.admin, listing)) == {"privacyFreezes": []}
