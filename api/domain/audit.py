"""The audit: reads of personal data batched per request, writes recorded with before/after."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from api.db.session import Session, Statement
from api.domain.conditions import Conditions
from api.domain.errors import BadUserInput
from api.domain.pagination import Page, decode_cursor, encode_cursor, make_page, page_size
from api.principal import Principal

CURSOR_KIND = "audit"
# Keys of write details that hold personal data (the columns behind policy.PERSONAL_FIELDS).
PERSONAL_COLUMNS = frozenset({"national_id", "full_name", "phone", "birth_date"})

_INSERT = """
INSERT INTO audit_log (actor_sub, actor_role, actor_center_id, actor_district_id, action,
                       operation, request_id, recipient_ids, fields, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
"""


@dataclass
class AuditTrail:
    """What this request revealed; becomes one INSERT when the request ends."""

    principal: Principal
    request_id: str
    operation: str | None = None
    recipient_ids: set[int] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)

    def note_read(self, recipient_id: int, field_name: str) -> None:
        self.recipient_ids.add(recipient_id)
        self.fields.add(field_name)

    def _statement(self, action: str, recipient_ids: list[int], fields: list[str],
                   detail: dict[str, Any]) -> Statement:
        p = self.principal
        return Statement(_INSERT, (p.sub, p.role.value, p.center_id, p.district_id, action,
                                   self.operation, self.request_id, recipient_ids, fields,
                                   json.dumps(detail, default=str)))

    def pending(self) -> list[Statement]:
        """The one batched INSERT for the reads (none when nothing personal was revealed)."""
        if not self.recipient_ids:
            return []
        return [self._statement("read", sorted(self.recipient_ids), sorted(self.fields), {})]

    async def record_write(self, session: Session, action: str, recipient_ids: list[int],
                           detail: dict[str, Any]) -> None:
        """Audit a write now, inside the write's own savepoint."""
        statement = self._statement(action, recipient_ids, sorted(detail.get("changed", [])),
                                    detail)
        await session.execute(statement.sql, *statement.args)


@dataclass(frozen=True)
class AccessEntry:
    """One access to a recipient's data as the recipient may see it: roles, not people."""

    at: datetime
    action: str
    role: str
    center_id: int | None
    district_id: int | None
    fields: list[str]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor_sub: str | None
    actor_role: str
    actor_center_id: int | None
    actor_district_id: int | None
    action: str
    operation: str | None
    request_id: str | None
    recipient_ids: list[int]
    fields: list[str]
    detail: dict[str, Any]


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    actor_role: str | None = None
    actor_sub: str | None = None
    recipient_id: int | None = None
    at_from: date | None = None
    at_to: date | None = None


def redact(detail: dict[str, Any]) -> dict[str, Any]:
    """The detail with personal values replaced, at any depth (the auditor's view)."""
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if key in PERSONAL_COLUMNS and value is not None:
            out[key] = "***"
        elif isinstance(value, dict):
            out[key] = redact(value)
        else:
            out[key] = value
    return out


async def access_log(session: Session, recipient_ids: list[int]) -> list[list[AccessEntry]]:
    """Per recipient, who touched their data, newest first: the DataLoader batch."""
    rows = await session.fetch(
        "SELECT at, action, actor_role, actor_center_id, actor_district_id, fields, "
        "recipient_ids FROM audit_log WHERE recipient_ids && $1::bigint[] "
        "ORDER BY id DESC LIMIT 1000", list(set(recipient_ids)))
    wanted = set(recipient_ids)
    grouped: dict[int, list[AccessEntry]] = {}
    for row in rows:
        entry = AccessEntry(at=row["at"], action=row["action"], role=row["actor_role"],
                            center_id=row["actor_center_id"],
                            district_id=row["actor_district_id"], fields=list(row["fields"]))
        for rid in wanted.intersection(row["recipient_ids"]):
            grouped.setdefault(rid, []).append(entry)
    return [grouped.get(rid, []) for rid in recipient_ids]


async def search(session: Session, filters: AuditFilter, first: int | None,
                 after: str | None) -> Page[AuditEntry]:
    """One page of audit entries (RLS limits who sees which), newest first."""
    size = page_size(first)
    key = decode_cursor(CURSOR_KIND, after, 1)
    where = Conditions()
    (where.add_if(filters.action, "action = {p}")
          .add_if(filters.actor_role, "actor_role = {p}")
          .add_if(filters.actor_sub, "actor_sub = {p}")
          .add_if(filters.at_from, "at >= {p}::date")
          .add_if(filters.at_to, "at < {p}::date + 1"))
    if filters.recipient_id is not None:
        where.add("recipient_ids @> ARRAY[{p}::bigint]", filters.recipient_id)
    if key is not None:
        if not isinstance(key[0], int):
            raise BadUserInput(f"after: {after!r} is not an audit cursor")
        where.add("id < {p}", key[0])
    limit = where.param(size + 1)
    rows = await session.fetch(
        "SELECT id, at, actor_sub, actor_role, actor_center_id, actor_district_id, action, "
        f"operation, request_id, recipient_ids, fields, detail FROM audit_log {where.where()} "
        f"ORDER BY id DESC LIMIT {limit}", *where.args)
    entries = [AuditEntry(id=r["id"], at=r["at"], actor_sub=r["actor_sub"],
                          actor_role=r["actor_role"], actor_center_id=r["actor_center_id"],
                          actor_district_id=r["actor_district_id"], action=r["action"],
                          operation=r["operation"], request_id=r["request_id"],
                          recipient_ids=list(r["recipient_ids"]), fields=list(r["fields"]),
                          detail=json.loads(r["detail"])) for r in rows]
    return make_page(entries, size, lambda e: encode_cursor(CURSOR_KIND, [e.id]))
