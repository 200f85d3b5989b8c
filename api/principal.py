"""Who is asking: the role and scope claims of a verified token (or the public)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from api.fields import is_id


class Role(StrEnum):
    ADMIN = "admin"
    AUDITOR = "auditor"
    DISTRICT_OFFICER = "district_officer"
    CENTER_STAFF = "center_staff"
    RECIPIENT = "recipient"
    PUBLIC = "public"


@dataclass(frozen=True)
class Principal:
    role: Role
    sub: str | None = None
    center_id: int | None = None
    district_id: int | None = None

    @property
    def recipient_id(self) -> int | None:
        """For role recipient, `sub` is the recipient's database id."""
        if self.role is Role.RECIPIENT and self.sub is not None and is_id(self.sub):
            return int(self.sub)
        return None


PUBLIC = Principal(role=Role.PUBLIC)
