"""Root query fields: guard by the policy table, call one domain function, present."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

from api.domain import audit, coverage, doses, recipients, reference
from api.domain.coverage import Dimension
from api.domain.recipients import parse_id
from api.policy import PERSONAL_PATHS, RECIPIENT_LOOKUPS
from api.schema import admin
from api.schema.guard import Info, check_root, root_field
from api.schema.inputs import (
    AuditLogFilter,
    CoverageFilterInput,
    DosesFilter,
    RecipientsFilter,
)
from api.schema.types import (
    AuditEntry,
    Center,
    Connection,
    CoverageRow,
    District,
    Dose,
    DueDose,
    Me,
    Recipient,
    Vaccine,
    connection,
)

FirstArg = Annotated[int | None, strawberry.argument(
    description="How many items (default 20, at most 100; more is an error, not a clamp).")]


@strawberry.type
class Query:
    @root_field("me", "Who is asking.")
    async def me(self, info: Info) -> Me:
        await check_root(info, "me")
        return Me()

    @root_field("recipient", "One recipient; null with NOT_FOUND when outside your scope.")
    async def recipient(self, info: Info, id: strawberry.ID) -> Recipient | None:
        await check_root(info, "recipient")
        found = await recipients.get(info.context.session, parse_id(str(id)))
        return Recipient.of(found, info.context.principal.role)

    @root_field("recipients", "Recipients in your scope, by id.")
    async def recipients(self, info: Info, filter: RecipientsFilter | None = None,
                         first: FirstArg = None,
                         after: str | None = None) -> Connection[Recipient] | None:
        await check_root(info, "recipients")
        wanted = (filter or RecipientsFilter()).to_domain()
        page = await recipients.search(info.context.session, wanted, first, after)
        for column, path in RECIPIENT_LOOKUPS.items():
            if getattr(wanted, column) is not None:
                for found in page.items:
                    for field_name in PERSONAL_PATHS[path]:
                        info.context.audit.note_read(found.id, field_name)
        role = info.context.principal.role
        return connection(page, lambda r: Recipient.of(r, role))

    @root_field("doses", "Doses in your scope, latest first.")
    async def doses(self, info: Info, filter: DosesFilter | None = None,
                    first: FirstArg = None,
                    after: str | None = None) -> Connection[Dose] | None:
        await check_root(info, "doses")
        page = await doses.search(info.context.session, (filter or DosesFilter()).to_domain(),
                                  first, after)
        role = info.context.principal.role
        return connection(page, lambda d: Dose.of(d, role))

    @root_field("dosesDue", "The recall list: next doses due in [from, to] and not given.")
    async def doses_due(self, info: Info,
                        from_: Annotated[date, strawberry.argument(name="from")], to: date | None = None,
                        center_id: strawberry.ID | None = None) -> list[DueDose] | None:
        await check_root(info, "dosesDue")
        center = parse_id(str(center_id), "centerId") if center_id is not None else None
        due = await doses.due(info.context.session, from_, to or from_, center)
        return [DueDose(record=d) for d in due]

    @root_field("coverage", "Counts of doses and distinct recipients, grouped; scoped by role "
                            "(district officers: their district; center staff: their center; "
                            "the public: national and per-district totals). Counts may be up "
                            "to 5 seconds old. Counts-only roles (public, district officers, "
                            "auditors, anyone under a freeze) may ask DISTRICT plus one of "
                            "CENTER, VACCINE, DOSE_NUMBER or one calendar month, and small "
                            "cells come back suppressed (see README, disclosure control).")
    async def coverage(self, info: Info, group_by: list[Dimension] | None = None,
                       filter: CoverageFilterInput | None = None) -> list[CoverageRow] | None:
        await check_root(info, "coverage")
        rows = await coverage.counts(info.context.session, group_by or [],
                                     (filter or CoverageFilterInput()).to_domain(),
                                     info.context.coverage_cache,
                                     info.context.settings.min_cell)
        return [CoverageRow(record=r) for r in rows]

    @root_field("districts", "The 64 districts.")
    async def districts(self, info: Info) -> list[District] | None:
        await check_root(info, "districts")
        return [District.of(d) for d in await reference.districts(info.context.session)]

    @root_field("centers", "Vaccination centers, optionally of one district.")
    async def centers(self, info: Info,
                      district_id: strawberry.ID | None = None) -> list[Center] | None:
        await check_root(info, "centers")
        district = parse_id(str(district_id), "districtId") if district_id is not None else None
        return [Center.of(c) for c in await reference.centers(info.context.session, district)]

    @root_field("vaccines", "The vaccines in use.")
    async def vaccines(self, info: Info) -> list[Vaccine] | None:
        await check_root(info, "vaccines")
        return [Vaccine.of(v) for v in await reference.vaccines(info.context.session)]

    @root_field("auditLog", "The audit log, newest first.")
    async def audit_log(self, info: Info, filter: AuditLogFilter | None = None,
                        first: FirstArg = None,
                        after: str | None = None) -> Connection[AuditEntry] | None:
        await check_root(info, "auditLog")
        page = await audit.search(info.context.session, (filter or AuditLogFilter()).to_domain(),
                                  first, after)
        return connection(page, lambda e: AuditEntry(record=e))

    backups = root_field("backups", "Every snapshot and segment with its state at each stage "
                                    "(spool, primary, replicas). Audited.", resolver=admin.backups)
    restore_job = root_field(
        "restoreJob", "A restore job started by restoreRecords: status, progress, counts, error "
                      "(any API process answers). Null with NOT_FOUND for an unknown id. Audited.",
        resolver=admin.restore_job)
    find_loss = root_field(
        "findLoss", "The shipped changes of one table per time bin (deletes, truncates, updates of "
                    "each column) and its bursts of loss with a proposed asOf, as `vaxvault "
                    "restore find-loss` finds them. Audited.", resolver=admin.find_loss)
    privacy_freezes = root_field("privacyFreezes", "Every privacy freeze in force now.",
                                 resolver=admin.privacy_freezes)
    plan_restore = root_field(
        "planRestore", "Dry run of restoreRecords: counts per action and a sample diff, column by "
                       "column. Nothing is written. Audited.",
        resolver=admin.plan_restore)
