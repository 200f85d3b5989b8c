"""Object types. Policy-controlled fields resolve through `reveal`, so the table decides."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Generic, TypeVar, cast

import strawberry
from strawberry.scalars import JSON

from api.domain import audit, coverage, doses, records
from api.domain.audit import AccessEntry as AccessRecord
from api.domain.audit import AuditEntry as AuditRecord
from api.domain.freeze import FreezeStatus
from api.domain.pagination import Page
from api.policy import mask_national_id
from api.principal import Role
from api.schema.guard import Info, plain_fields, policy_field, reveal

T = TypeVar("T")
N = TypeVar("N")


def _id(value: int | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


@strawberry.type(description="One of the 64 districts. Public reference data.")
class District:
    id: strawberry.ID
    name: str
    division: str

    @classmethod
    def of(cls, d: records.District) -> District:
        return cls(id=strawberry.ID(str(d.id)), name=d.name, division=d.division)


@strawberry.type(description="A vaccination center. Public reference data.")
class Center:
    id: strawberry.ID
    name: str
    district_id: strawberry.ID

    @classmethod
    def of(cls, c: records.Center) -> Center:
        return cls(id=strawberry.ID(str(c.id)), name=c.name,
                   district_id=strawberry.ID(str(c.district_id)))


@strawberry.type(description="A vaccine and its primary series. Public reference data.")
class Vaccine:
    code: str
    name: str
    doses_required: int
    dose_interval_days: int = strawberry.field(
        description="Minimum days between doses of the series.")

    @classmethod
    def of(cls, v: records.Vaccine) -> Vaccine:
        return cls(code=v.code, name=v.name, doses_required=v.doses_required,
                   dose_interval_days=v.dose_interval_days)


@strawberry.type(description="Who touched a recipient's data: roles and places, not people.")
class AccessEntry:
    record: strawberry.Private[AccessRecord]

    @strawberry.field
    def at(self) -> datetime:
        return self.record.at

    @strawberry.field(description="read, write, ...")
    def action(self) -> str:
        return self.record.action

    @strawberry.field
    def role(self) -> str:
        return self.record.role

    @strawberry.field
    def center_id(self) -> strawberry.ID | None:
        return _id(self.record.center_id)

    @strawberry.field
    def district_id(self) -> strawberry.ID | None:
        return _id(self.record.district_id)

    @strawberry.field(description="Which personal fields were read.")
    def fields(self) -> list[str]:
        return self.record.fields

    @strawberry.field(description="Pass as `after` to list the entries older than this one.")
    def cursor(self) -> str:
        return self.record.cursor


AccessFirst = Annotated[int | None, strawberry.argument(
    description="How many entries, newest first (default and at most 100).")]
AccessAfter = Annotated[str | None, strawberry.argument(
    description="An entry's cursor: list the entries older than it.")]


@strawberry.type
class Recipient:
    record: strawberry.Private[records.Recipient]
    id: strawberry.ID | None = policy_field("Recipient", "id")
    sex: str | None = policy_field("Recipient", "sex")
    district: District | None = policy_field("Recipient", "district")
    registered_at: datetime | None = policy_field("Recipient", "registeredAt")

    @classmethod
    def of(cls, record: records.Recipient, role: Role) -> Recipient:
        return cls(record=record, **plain_fields(role, "Recipient", {
            "id": strawberry.ID(str(record.id)), "sex": record.sex,
            "district": District.of(record.district), "registeredAt": record.registered_at}))

    @policy_field("Recipient", "nationalId")
    def national_id(self, info: Info) -> str | None:
        return reveal(info, "Recipient", "nationalId", self.record.national_id, self.record.id,
                      mask=mask_national_id, residence=self.record.district.id)

    @policy_field("Recipient", "fullName")
    def full_name(self, info: Info) -> str | None:
        return reveal(info, "Recipient", "fullName", self.record.full_name, self.record.id,
                      residence=self.record.district.id)

    @policy_field("Recipient", "birthDate")
    def birth_date(self, info: Info) -> date | None:
        return reveal(info, "Recipient", "birthDate", self.record.birth_date, self.record.id,
                      residence=self.record.district.id)

    @policy_field("Recipient", "phone")
    def phone(self, info: Info) -> str | None:
        return reveal(info, "Recipient", "phone", self.record.phone, self.record.id,
                      residence=self.record.district.id)

    @policy_field("Recipient", "doses")
    async def doses(self, info: Info) -> list[Dose] | None:
        reveal(info, "Recipient", "doses", None)
        found = await info.context.loaders.doses.load(self.record.id)
        role = info.context.principal.role
        return [Dose.of(d, role) for d in found]

    @policy_field("Recipient", "accessLog")
    async def access_log(self, info: Info, first: AccessFirst = None,
                         after: AccessAfter = None) -> list[AccessEntry] | None:
        reveal(info, "Recipient", "accessLog", None)
        entries = await info.context.loaders.access_log.load(
            audit.AccessPage(self.record.id, first, after))
        return [AccessEntry(record=e) for e in entries]


@strawberry.type
class Dose:
    record: strawberry.Private[records.Dose]
    id: strawberry.ID | None = policy_field("Dose", "id")
    dose_number: int | None = policy_field("Dose", "doseNumber")
    vaccine: Vaccine | None = policy_field("Dose", "vaccine")
    lot_number: str | None = policy_field("Dose", "lotNumber")
    administered_on: date | None = policy_field("Dose", "administeredOn")
    center: Center | None = policy_field("Dose", "center")
    next_due_on: date | None = policy_field("Dose", "nextDueOn")

    @classmethod
    def of(cls, record: records.Dose, role: Role) -> Dose:
        return cls(record=record, **plain_fields(role, "Dose", {
            "id": strawberry.ID(str(record.id)), "doseNumber": record.dose_number,
            "vaccine": Vaccine.of(record.vaccine), "lotNumber": record.lot_number,
            "administeredOn": record.administered_on, "center": Center.of(record.center),
            "nextDueOn": record.next_due_on}))

    @policy_field("Dose", "recipient")
    def recipient(self, info: Info) -> Recipient | None:
        reveal(info, "Dose", "recipient", None)
        return Recipient.of(self.record.recipient, info.context.principal.role)


@strawberry.type(description="A dose falling due and not given yet: the SMS recall list.")
class DueDose:
    record: strawberry.Private[doses.DueDose]

    @strawberry.field(description="The next dose number in the series.")
    def dose_number(self) -> int:
        return self.record.dose_number

    @strawberry.field
    def due_on(self) -> date:
        return self.record.due_on

    @strawberry.field(description="The last dose given, which set the due date.")
    def last_dose(self, info: Info) -> Dose:
        return Dose.of(self.record.last_dose, info.context.principal.role)

    @strawberry.field
    def recipient(self, info: Info) -> Recipient:
        return Recipient.of(self.record.last_dose.recipient, info.context.principal.role)


@strawberry.type(description="Counts of doses and distinct recipients for one group. Dimensions "
                             "not grouped by are null.")
class CoverageRow:
    record: strawberry.Private[coverage.CoverageRow]

    @strawberry.field
    def district(self) -> District | None:
        return District.of(self.record.district) if self.record.district else None

    @strawberry.field
    def center(self) -> Center | None:
        return Center.of(self.record.center) if self.record.center else None

    @strawberry.field
    def day(self) -> date | None:
        return self.record.day

    @strawberry.field
    def dose_number(self) -> int | None:
        return self.record.dose_number

    @strawberry.field
    def vaccine(self) -> Vaccine | None:
        return Vaccine.of(self.record.vaccine) if self.record.vaccine else None

    @strawberry.field(description="Number of doses given; null when suppressed.")
    def doses(self) -> int | None:
        return self.record.doses

    @strawberry.field(description="Number of distinct recipients dosed; null when suppressed.")
    def recipients(self) -> int | None:
        return self.record.recipients

    @strawberry.field(description="True when this cell's counts are withheld: it counts fewer "
                                  "than VAXVAULT_MIN_CELL recipients, or would reveal such a "
                                  "cell by differencing (counts-only roles; see README).")
    def suppressed(self) -> bool:
        return self.record.suppressed


@strawberry.type(description="An entry of the append-only audit log.")
class AuditEntry:
    record: strawberry.Private[AuditRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.record.id))

    @strawberry.field
    def at(self) -> datetime:
        return self.record.at

    @strawberry.field
    def actor_sub(self) -> str | None:
        return self.record.actor_sub

    @strawberry.field
    def actor_role(self) -> str:
        return self.record.actor_role

    @strawberry.field
    def actor_center_id(self) -> strawberry.ID | None:
        return _id(self.record.actor_center_id)

    @strawberry.field
    def actor_district_id(self) -> strawberry.ID | None:
        return _id(self.record.actor_district_id)

    @strawberry.field(description="read, write, freeze, backup, restore")
    def action(self) -> str:
        return self.record.action

    @strawberry.field
    def operation(self) -> str | None:
        return self.record.operation

    @strawberry.field
    def request_id(self) -> str | None:
        return self.record.request_id

    @strawberry.field
    def recipient_ids(self) -> list[strawberry.ID]:
        return [strawberry.ID(str(i)) for i in self.record.recipient_ids]

    @strawberry.field(description="Personal fields read, or columns written.")
    def fields(self) -> list[str]:
        return self.record.fields

    @policy_field("AuditEntry", "detail")
    def detail(self, info: Info) -> JSON | None:
        detail = reveal(info, "AuditEntry", "detail", self.record.detail, mask=audit.redact)
        if detail is self.record.detail:
            # Unredacted before/after values and predicates are reads of those people's data.
            for field_name in audit.personal_fields(detail):
                for recipient_id in self.record.recipient_ids:
                    info.context.audit.note_read(recipient_id, field_name)
        return cast(JSON, detail)


@strawberry.type(description="A privacy freeze: while active, every role but admin and the "
                             "recipient themselves sees counts only.")
class PrivacyFreeze:
    record: strawberry.Private[FreezeStatus]

    @strawberry.field(description="null for a national freeze")
    def district_id(self) -> strawberry.ID | None:
        return _id(self.record.district_id)

    @strawberry.field
    def active(self) -> bool:
        return self.record.active

    @strawberry.field
    def until(self) -> datetime | None:
        return self.record.until

    @strawberry.field
    def reason(self) -> str:
        return self.record.reason


@strawberry.type(description="Who is asking, as the API understood the token.")
class Me:
    @strawberry.field(description="admin, auditor, district_officer, center_staff, recipient "
                                  "or public")
    def role(self, info: Info) -> str:
        return info.context.principal.role.value

    @strawberry.field
    def sub(self, info: Info) -> str | None:
        return info.context.principal.sub

    @strawberry.field
    def center_id(self, info: Info) -> strawberry.ID | None:
        return _id(info.context.principal.center_id)

    @strawberry.field
    def district_id(self, info: Info) -> strawberry.ID | None:
        return _id(info.context.principal.district_id)

    @strawberry.field(description="The privacy freeze that limits you now, if any.")
    async def privacy_freeze(self, info: Info) -> PrivacyFreeze | None:
        state = await info.context.session.state()
        if state.freeze is None:
            return None
        f = state.freeze
        return PrivacyFreeze(record=FreezeStatus(f.district_id, True, f.until, f.reason))

    @policy_field("Me", "recipient")
    async def recipient(self, info: Info) -> Recipient | None:
        reveal(info, "Me", "recipient", None)
        recipient_id = info.context.principal.recipient_id
        assert recipient_id is not None
        found = await info.context.loaders.recipient.load(recipient_id)
        return Recipient.of(found, info.context.principal.role) if found is not None else None

    @policy_field("Me", "accessLog")
    async def access_log(self, info: Info, first: AccessFirst = None,
                         after: AccessAfter = None) -> list[AccessEntry] | None:
        reveal(info, "Me", "accessLog", None)
        recipient_id = info.context.principal.recipient_id
        assert recipient_id is not None
        entries = await info.context.loaders.access_log.load(
            audit.AccessPage(recipient_id, first, after))
        return [AccessEntry(record=e) for e in entries]


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo


def connection(page: Page[T], build: Callable[[T], N]) -> Connection[N]:
    edges = [Edge(cursor=c, node=build(item))
             for item, c in zip(page.items, page.cursors, strict=True)]
    return Connection(edges=edges, page_info=PageInfo(
        has_next_page=page.has_next, end_cursor=page.cursors[-1] if page.cursors else None))
