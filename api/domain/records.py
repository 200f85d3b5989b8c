"""The registry's records as the domain returns them (built from joined rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from asyncpg import Record


@dataclass(frozen=True)
class District:
    id: int
    name: str
    division: str


@dataclass(frozen=True)
class Center:
    id: int
    name: str
    district_id: int


@dataclass(frozen=True)
class Vaccine:
    code: str
    name: str
    doses_required: int
    dose_interval_days: int


@dataclass(frozen=True)
class Recipient:
    id: int
    national_id: str
    full_name: str
    birth_date: date
    sex: str
    phone: str | None
    district: District
    center_id: int
    registered_at: datetime

    @classmethod
    def from_row(cls, row: Record, prefix: str = "") -> Recipient:
        p = prefix
        return cls(id=row[f"{p}id"], national_id=row[f"{p}national_id"],
                   full_name=row[f"{p}full_name"], birth_date=row[f"{p}birth_date"],
                   sex=row[f"{p}sex"], phone=row[f"{p}phone"],
                   district=District(row[f"{p}district_id"], row[f"{p}district_name"],
                                     row[f"{p}division"]),
                   center_id=row[f"{p}center_id"], registered_at=row[f"{p}registered_at"])


# Columns Recipient.from_row needs, with `r` the recipients row and `dt` its district.
RECIPIENT_COLUMNS = ("r.id, r.national_id, r.full_name, r.birth_date, r.sex, r.phone, "
                     "r.district_id, dt.name AS district_name, dt.division, r.center_id, "
                     "r.registered_at")
RECIPIENT_FROM = "recipients r JOIN districts dt ON dt.id = r.district_id"


@dataclass(frozen=True)
class Dose:
    id: int
    recipient_id: int
    dose_number: int
    vaccine: Vaccine
    lot_number: str
    administered_on: date | None
    center: Center
    next_due_on: date | None
    recorded_by: str
    # Joined in the same statement: Dose.recipient then costs no statement and no await.
    recipient: Recipient

    @classmethod
    def from_row(cls, row: Record) -> Dose:
        return cls(id=row["id"], recipient_id=row["recipient_id"], dose_number=row["dose_number"],
                   vaccine=Vaccine(row["vaccine_code"], row["vaccine_name"],
                                   row["doses_required"], row["dose_interval_days"]),
                   lot_number=row["lot_number"], administered_on=row["administered_on"],
                   center=Center(row["center_id"], row["center_name"], row["center_district_id"]),
                   next_due_on=row["next_due_on"], recorded_by=row["recorded_by"],
                   recipient=Recipient.from_row(row, "r_"))

    def values(self) -> dict[str, Any]:
        """The stored values, for the before/after of the audit."""
        return {"recipient_id": self.recipient_id, "dose_number": self.dose_number,
                "vaccine_code": self.vaccine.code, "lot_number": self.lot_number,
                "administered_on": _iso(self.administered_on), "center_id": self.center.id,
                "next_due_on": _iso(self.next_due_on)}


DOSE_COLUMNS = ("d.id, d.recipient_id, d.dose_number, d.vaccine_code, v.name AS vaccine_name, "
                "v.doses_required, v.dose_interval_days, d.lot_number, d.administered_on, "
                "d.center_id, c.name AS center_name, c.district_id AS center_district_id, "
                "d.next_due_on, d.recorded_by, r.id AS r_id, r.national_id AS r_national_id, "
                "r.full_name AS r_full_name, r.birth_date AS r_birth_date, r.sex AS r_sex, "
                "r.phone AS r_phone, r.district_id AS r_district_id, "
                "dt.name AS r_district_name, dt.division AS r_division, "
                "r.center_id AS r_center_id, r.registered_at AS r_registered_at")
DOSE_FROM = ("doses d JOIN vaccines v ON v.code = d.vaccine_code "
             "JOIN centers c ON c.id = d.center_id "
             "JOIN recipients r ON r.id = d.recipient_id "
             "JOIN districts dt ON dt.id = r.district_id")


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None
