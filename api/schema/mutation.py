"""Root mutations. Expected failures are members of each result union, not errors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from api.domain import freeze, registration, vaccination
from api.domain.outcome import Duplicate, Invalid
from api.domain.recipients import parse_id
from api.schema import admin
from api.schema.guard import Info, check_root, root_field
from api.schema.inputs import CorrectDoseInput, FreezeScope, RecordDoseInput, RegisterRecipientInput
from api.schema.types import Dose, PrivacyFreeze, Recipient


@strawberry.type(description="An input value breaks a rule: `field` names it, `message` says "
                             "what to do.")
class ValidationFailed:
    field: str
    message: str

    @classmethod
    def of(cls, invalid: Invalid) -> ValidationFailed:
        return cls(field=invalid.field, message=invalid.message)


@strawberry.type(description="The national ID is registered already.")
class DuplicateNationalId:
    field: str
    value: str
    message: str


RegisterRecipientResult = Annotated[Recipient | DuplicateNationalId | ValidationFailed,
                                    strawberry.union("RegisterRecipientResult")]
DoseResult = Annotated[Dose | ValidationFailed, strawberry.union("DoseResult")]
SetPrivacyFreezeResult = Annotated[PrivacyFreeze | ValidationFailed,
                                   strawberry.union("SetPrivacyFreezeResult")]


@strawberry.type
class Mutation:
    @root_field("registerRecipient", "Register a person (center staff: at their own center).",
                mutation=True)
    async def register_recipient(self, info: Info,
                                 input: RegisterRecipientInput) -> RegisterRecipientResult | None:
        await check_root(info, "registerRecipient")
        ctx = info.context
        result = await registration.register(ctx.session, ctx.audit, input.to_domain())
        if isinstance(result, Duplicate):
            return DuplicateNationalId(field=result.field, value=result.value,
                                       message=result.message)
        if isinstance(result, Invalid):
            return ValidationFailed.of(result)
        return Recipient.of(result, info.context.principal.role)

    @root_field("recordDose", "Record the next dose of a series (doses in order, at least the "
                              "vaccine's interval apart, not in the future; center staff: at "
                              "their own center). Sets nextDueOn.", mutation=True)
    async def record_dose(self, info: Info, input: RecordDoseInput) -> DoseResult | None:
        await check_root(info, "recordDose")
        ctx = info.context
        result = await vaccination.record(ctx.session, ctx.audit, input.to_domain())
        if isinstance(result, Invalid):
            return ValidationFailed.of(result)
        return Dose.of(result, ctx.principal.role)

    @root_field("correctDose", "Correct a recorded dose, with a reason; the previous values stay "
                               "in the audit log.", mutation=True)
    async def correct_dose(self, info: Info, input: CorrectDoseInput) -> DoseResult | None:
        await check_root(info, "correctDose")
        ctx = info.context
        result = await vaccination.correct(ctx.session, ctx.audit, input.to_domain())
        if isinstance(result, Invalid):
            return ValidationFailed.of(result)
        return Dose.of(result, ctx.principal.role)

    @root_field("setPrivacyFreeze", "Freeze personal data nationally or for one district until a "
                                    "time: every role but admin and the recipient themselves sees "
                                    "counts only. `until` null or past lifts it. Audited.",
                mutation=True)
    async def set_privacy_freeze(self, info: Info, scope: FreezeScope, reason: str,
                                 until: datetime | None = None,
                                 district_id: strawberry.ID | None = None) -> SetPrivacyFreezeResult | None:
        await check_root(info, "setPrivacyFreeze")
        district = parse_id(str(district_id), "districtId") if district_id is not None else None
        if scope is FreezeScope.DISTRICT and district is None:
            return ValidationFailed(field="districtId", message="a DISTRICT freeze needs districtId")
        if scope is FreezeScope.NATIONAL and district is not None:
            return ValidationFailed(field="districtId",
                                    message="a NATIONAL freeze takes no districtId; use DISTRICT")
        ctx = info.context
        result = await freeze.set_freeze(ctx.session, ctx.audit,
                                         freeze.FreezeOrder(district, until, reason))
        if isinstance(result, Invalid):
            return ValidationFailed.of(result)
        return PrivacyFreeze(record=result)

    start_backup = root_field(
        "startBackup", "Run a backup now (exclusive across machines: BackupBusy while another "
                       "runs). Audited.", mutation=True, resolver=admin.start_backup)
    verify_backups = root_field(
        "verifyBackups", "Check every stored snapshot and segment (or only `id`) at every stage: "
                         "manifests readable and authentic, every object present with its SHA-256; "
                         "with deep, decrypted, decompressed and re-counted. Problems are in the "
                         "answer, per stage. Audited.", mutation=True, resolver=admin.verify_backups)
    restore_records = root_field(
        "restoreRecords", "Restore rows of one table as they were at asOf (missing rows "
                          "re-inserted, damaged rows written back, rows changed since reported "
                          "as conflicts): starts a job, poll restoreJob. Audited.", mutation=True,
        resolver=admin.restore_records)
