"""The admin console in a real browser, through the incident it is for: a seeded registry with
change capture, a full backup, a day of doses lost, the loss found on the chart, the restore
planned and run with progress, and the rows back exactly as they were. And a non-admin refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import expect

from api.auth import mint_token
from api.principal import Role
from api.settings import Settings
from backup.capture.triggers import install
from tests.browser.conftest import Tab
from tests.conftest import JWT_SECRET
from tests.live_server import live_server

pytestmark = pytest.mark.slow

DOSES_OF_DAY = "SELECT id, to_jsonb(d)::text AS image FROM doses d WHERE administered_on = $1 ORDER BY id"


async def _sign_in(tab: Tab, base: str, token: str) -> None:
    await tab.page.goto(f"{base}/console")
    await tab.page.locator("#sign-in").wait_for()
    await tab.page.fill("#token", token)
    await tab.page.click("#sign-in-form button[type=submit]")


async def test_console_walks_the_incident_from_loss_to_restored_rows(
        tab: Tab, seeded_settings: Settings, tmp_path: Path) -> None:
    settings = seeded_settings.with_overrides(backup_url=(tmp_path / "primary").as_uri(),
                                              backup_spool_dir=tmp_path / "spool")
    owner = await asyncpg.connect(settings.require_database_url())
    try:
        await install(owner)
        with live_server(settings) as base:
            await _walk_the_incident(tab, owner, base, settings.require_database_url())
    finally:
        await owner.close()


async def _walk_the_incident(tab: Tab, owner: asyncpg.Connection, base: str,
                             database_url: str) -> None:
    page = tab.page
    await _sign_in(tab, base, mint_token(JWT_SECRET, Role.ADMIN, sub="night-ops"))
    await page.locator("#backups-table").wait_for()
    assert await page.evaluate("sessionStorage.length") == 1
    assert await page.evaluate("localStorage.length") == 0
    assert "night-ops" in await page.inner_text("#who")

    await page.click("#backup-full")
    await expect(page.locator("#backup-result")).to_contain_text("Full backup")
    # The schedule beside what the stages hold: the next run, and the snapshot just made.
    await expect(page.locator("#next-run")).to_contain_text("incremental at")
    assert "Newest snapshot: spool: none, primary: " in await page.inner_text(
        "#backup-schedule [data-kind=full]")
    await tab.shot("full-backup")
    await page.click("#verify")
    await expect(page.locator("#verify-result")).to_contain_text("every stage is sound")
    assert "sound: 1 unit(s)" in await page.inner_text("#verify-stages")
    await tab.shot("verified")

    day = await owner.fetchval("SELECT administered_on FROM doses GROUP BY 1 "
                               "ORDER BY count(*) DESC, 1 LIMIT 1")
    before = await owner.fetch(DOSES_OF_DAY, day)
    good_until = await owner.fetchval("SELECT clock_timestamp()")
    async with owner.transaction():
        await owner.execute("DELETE FROM doses WHERE administered_on = $1", day)
    assert await owner.fetch(DOSES_OF_DAY, day) == []

    await page.click("#backup-incremental")
    await expect(page.locator("#backup-result")).to_contain_text(f"{len(before)} changes")
    await expect(page.locator("#backups-table tbody tr")).to_have_count(2)  # snapshot, segment
    await tab.shot("incremental-backup")

    await page.click("nav [data-tab=loss]")
    burst = page.locator(".bar.burst")
    await burst.first.wait_for()
    assert await burst.count() == 1
    assert int(await burst.first.get_attribute("data-count") or 0) == len(before)
    assert f"{len(before)} rows: delete" in await page.inner_text("#loss-windows")
    await expect(page.locator("#loss-source")).to_contain_text("(0 changes not shipped")
    await tab.shot("loss-chart")

    await burst.first.click()
    await page.locator("#restore:not([hidden])").wait_for()
    proposed = await page.input_value("#plan-as-of")
    as_of = datetime.fromisoformat(proposed)
    assert good_until < as_of < datetime.now(UTC)
    await page.fill("#plan-as-of", "2020-01-01T00:00:00+06:00")  # before any backup: a sentence
    await page.click("#plan-button")
    await expect(page.locator("#error")).to_contain_text("2020-01-01")
    assert "snapshot" in (await page.inner_text("#error")).lower()
    await tab.shot("no-snapshot-before-t")
    await page.fill("#plan-as-of", proposed)
    await page.click("#add-condition")
    await page.fill("#conditions .condition .column", "administered_on")
    await page.fill("#conditions .condition .values", day.isoformat())
    await page.click("#plan-button")
    reinsert = page.locator("[data-count=reinsert] strong")
    await reinsert.wait_for()
    assert await reinsert.inner_text() == str(len(before))
    assert await page.inner_text("[data-count=conflict] strong") == "0"
    await tab.shot("plan")

    # A barrier, not a clock: while this SHARE lock holds, the restore reads doses but cannot
    # write them, so the job waits at its write step and the bar shows where it is.
    barrier = await asyncpg.connect(database_url)
    hold = barrier.transaction()
    await hold.start()
    await barrier.execute("LOCK TABLE doses IN SHARE MODE")
    status = page.locator("#restore-status")
    try:
        await page.click("#restore-button")
        await expect(status).to_contain_text("writing the restored rows", timeout=60_000)
        moving = await page.eval_on_selector("#restore-progress", "p => p.value")
        assert 0 < moving < 1
        assert f"{round(moving * 100)}%" in await status.inner_text()
        await tab.shot("restoring")
    finally:
        await hold.rollback()
        await barrier.close()
    await expect(status).to_contain_text(f"Restored {len(before)} row(s)")
    assert await page.locator("#restore-progress").is_visible()
    assert await page.eval_on_selector("#restore-progress", "p => p.value") == 1
    assert "Audit entry" in await status.inner_text()
    await page.locator("#restore-history tbody tr").first.wait_for()
    await tab.shot("restored")
    assert [tuple(r) for r in await owner.fetch(DOSES_OF_DAY, day)] == \
        [tuple(r) for r in before]
    await _reveal_and_warnings(tab, owner)

    await page.click("nav [data-tab=freeze]")
    await page.fill("#freeze-until", (datetime.now(UTC) + timedelta(hours=2)).isoformat())
    await page.fill("#freeze-reason", "phones leaked from a district portal")
    await page.click("#freeze-set")
    await expect(page.locator("#freeze-result")).to_contain_text("Frozen for the whole country")
    await expect(page.locator("#freeze-table")).to_contain_text("phones leaked")
    assert await owner.fetchval("SELECT count(*) FROM privacy_freezes WHERE lifted_at IS NULL "
                                "AND until > now()") == 1
    await tab.shot("freeze")
    await page.click("#freeze-table button.lift")
    await expect(page.locator("#freeze-result")).to_contain_text("Lifted for the whole country")
    assert await owner.fetchval("SELECT count(*) FROM privacy_freezes WHERE lifted_at IS NULL "
                                "AND until > now()") == 0
    assert tab.problems == []


async def _reveal_and_warnings(tab: Tab, owner: asyncpg.Connection) -> None:
    """A name overwritten by mistake: the plan withholds it until the admin reveals it, which
    is audited; with the change log gone, the plan says what it cannot vouch for."""
    page = tab.page
    rid = await owner.fetchval("SELECT min(id) FROM recipients")
    as_of = await owner.fetchval("SELECT clock_timestamp()")
    await owner.execute("UPDATE recipients SET full_name = 'Wrong Name' WHERE id = $1", rid)
    reads = ("SELECT count(*) FROM audit_log WHERE action = 'read' "
             "AND recipient_ids @> ARRAY[$1::bigint]")
    read_before = await owner.fetchval(reads, rid)
    await page.fill("#plan-as-of", as_of.isoformat())
    await page.select_option("#plan-table", "RECIPIENTS")
    await page.fill("#conditions .condition .column", "id")
    await page.fill("#conditions .condition .values", str(rid))
    await page.click("#plan-button")
    await expect(page.locator("[data-count=write-back] strong")).to_have_text("1")
    sample = page.locator("#plan-sample")
    assert "Wrong Name" not in await sample.inner_text()
    assert await sample.locator(".masked").count() == 2  # full_name now and at T
    assert await owner.fetchval(reads, rid) == read_before  # nothing shown, nothing read
    await tab.shot("plan-withheld")
    await page.click("#reveal")
    await expect(sample).to_contain_text("Wrong Name")
    await expect(page.locator("#plan-result")).to_contain_text("Personal values revealed")
    assert await owner.fetchval(reads, rid) == read_before + 1
    await tab.shot("plan-revealed")

    await owner.execute("DROP SCHEMA vaxvault_backup CASCADE")  # the live change log is lost
    await page.click("#plan-button")
    warnings = page.locator("#plan-warnings")
    await expect(warnings).to_contain_text("Read before restoring")
    assert "live change log was not read" in await warnings.inner_text()
    await tab.shot("plan-warnings")
    await page.click("#restore-button")  # the job carries the plan's warnings to its end
    await expect(page.locator("#restore-status")).to_contain_text("Restored 1 row(s)")
    await expect(page.locator("#job-warnings")).to_contain_text("live change log was not read")
    assert await owner.fetchval("SELECT full_name FROM recipients WHERE id = $1", rid) != \
        "Wrong Name"
    await tab.shot("restored-with-warnings")


async def test_console_refuses_a_token_that_is_not_admin(tab: Tab, settings: Settings) -> None:
    with live_server(settings) as base:
        await _refuse(tab, base)


async def _refuse(tab: Tab, base: str) -> None:
    staff = mint_token(JWT_SECRET, Role.CENTER_STAFF, sub="nurse-7", center_id=1)
    await _sign_in(tab, base, staff)
    error = tab.page.locator("#error")
    await expect(error).to_contain_text("This token is for role center_staff")
    assert "needs a token of role admin" in await error.inner_text()
    assert await tab.page.locator("#app").is_hidden()
    assert await tab.page.evaluate("sessionStorage.length") == 0
    await tab.shot("not-admin")

    await tab.page.fill("#token", "not-a-token")
    await tab.page.click("#sign-in-form button[type=submit]")
    await expect(error).to_contain_text("The server refused the token")
    assert await tab.page.locator("#app").is_hidden()
    await tab.shot("bad-token")
