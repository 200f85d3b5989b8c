"""Input types and enums, each with its conversion to the domain's record."""

from __future__ import annotations

from datetime import date
from enum import Enum

import strawberry

from api.domain.audit import AuditFilter
from api.domain.coverage import CoverageFilter, Dimension
from api.domain.doses import DoseFilter
from api.domain.recipients import RecipientFilter, parse_id
from api.domain.registration import Registration
from api.domain.vaccination import Correction, NewDose


def _id(value: strawberry.ID | None, name: str) -> int | None:
    return None if value is None else parse_id(str(value), name)


CoverageDimension = strawberry.enum(Dimension, name="CoverageDimension")


@strawberry.enum
class FreezeScope(Enum):
    NATIONAL = "NATIONAL"
    DISTRICT = "DISTRICT"


@strawberry.input
class RecipientsFilter:
    district_id: strawberry.ID | None = None
    center_id: strawberry.ID | None = None
    national_id: str | None = None
    phone: str | None = None
    name_prefix: str | None = None
    registered_from: date | None = None
    registered_to: date | None = None

    def to_domain(self) -> RecipientFilter:
        return RecipientFilter(
            district_id=_id(self.district_id, "districtId"),
            center_id=_id(self.center_id, "centerId"), national_id=self.national_id,
            phone=self.phone, name_prefix=self.name_prefix,
            registered_from=self.registered_from, registered_to=self.registered_to)


@strawberry.input
class DosesFilter:
    center_id: strawberry.ID | None = None
    recipient_id: strawberry.ID | None = None
    administered_from: date | None = None
    administered_to: date | None = None
    dose_number: int | None = None
    vaccine: str | None = strawberry.field(default=None, description="A vaccine code.")

    def to_domain(self) -> DoseFilter:
        return DoseFilter(
            center_id=_id(self.center_id, "centerId"),
            recipient_id=_id(self.recipient_id, "recipientId"),
            administered_from=self.administered_from, administered_to=self.administered_to,
            dose_number=self.dose_number, vaccine=self.vaccine)


@strawberry.input(name="CoverageFilter")
class CoverageFilterInput:
    district_id: strawberry.ID | None = None
    center_id: strawberry.ID | None = None
    administered_from: date | None = None
    administered_to: date | None = None
    vaccine: str | None = None
    dose_number: int | None = None

    def to_domain(self) -> CoverageFilter:
        return CoverageFilter(
            district_id=_id(self.district_id, "districtId"),
            center_id=_id(self.center_id, "centerId"),
            administered_from=self.administered_from, administered_to=self.administered_to,
            vaccine=self.vaccine, dose_number=self.dose_number)


@strawberry.input
class AuditLogFilter:
    action: str | None = None
    actor_role: str | None = None
    actor_sub: str | None = None
    recipient_id: strawberry.ID | None = None
    from_: date | None = strawberry.field(default=None, name="from")
    to: date | None = None

    def to_domain(self) -> AuditFilter:
        return AuditFilter(action=self.action, actor_role=self.actor_role,
                           actor_sub=self.actor_sub,
                           recipient_id=_id(self.recipient_id, "recipientId"),
                           at_from=self.from_, at_to=self.to)


@strawberry.input
class RegisterRecipientInput:
    national_id: str
    full_name: str
    birth_date: date
    sex: str = strawberry.field(description="female, male or other")
    district_id: strawberry.ID
    phone: str | None = None
    center_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to a center_staff member's own center.")

    def to_domain(self) -> Registration:
        district_id = _id(self.district_id, "districtId")
        assert district_id is not None
        return Registration(national_id=self.national_id, full_name=self.full_name,
                            birth_date=self.birth_date, sex=self.sex, phone=self.phone,
                            district_id=district_id, center_id=_id(self.center_id, "centerId"))


@strawberry.input
class RecordDoseInput:
    recipient_id: strawberry.ID
    vaccine: str = strawberry.field(description="A vaccine code, see `vaccines`.")
    lot_number: str
    administered_on: date
    dose_number: int | None = strawberry.field(
        default=None, description="Defaults to the next in the series; any other is refused.")
    center_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to a center_staff member's own center.")

    def to_domain(self) -> NewDose:
        recipient_id = _id(self.recipient_id, "recipientId")
        assert recipient_id is not None
        return NewDose(recipient_id=recipient_id, vaccine=self.vaccine,
                       lot_number=self.lot_number, administered_on=self.administered_on,
                       dose_number=self.dose_number, center_id=_id(self.center_id, "centerId"))


@strawberry.input
class CorrectDoseInput:
    dose_id: strawberry.ID
    reason: str = strawberry.field(description="Why; kept with the previous values in the audit.")
    vaccine: str | None = None
    lot_number: str | None = None
    administered_on: date | None = None
    center_id: strawberry.ID | None = None

    def to_domain(self) -> Correction:
        dose_id = _id(self.dose_id, "doseId")
        assert dose_id is not None
        return Correction(dose_id=dose_id, reason=self.reason, vaccine=self.vaccine,
                          lot_number=self.lot_number, administered_on=self.administered_on,
                          center_id=_id(self.center_id, "centerId"))
