"""The audit: reads of personal data batched per request, writes recorded with before/after."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg

from api.db.session import Session, Statement
from api.domain.conditions import Conditions
from api.domain.errors import BadUserInput
from api.domain.pagination import (
    MAX_FIRST,
    Page,
    decode_cursor,
    encode_cursor,
    make_page,
    page_size,
)
from api.errors import DatabaseError
from api.principal import Principal

CURSOR_KIND = "audit"
# Keys of write details that hold personal data: column -> the field in policy.PERSONAL_FIELDS.
PERSONAL_FIELD_OF = {"national_id": "nationalId", "full_name": "fullName", "phone": "phone",
                     "birth_date": "birthDate"}
PERSONAL_COLUMNS = frozenset(PERSONAL_FIELD_OF)
# Restore predicates are stored as SQL text (national_id = '...'): their literals are values.
_PREDICATE_KEYS = frozenset({"predicate", "where"})
_LITERAL = re.compile(r"'(?:[^']|'')*'|(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")

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
    cursor: str = ""             # pass as `after` for the entries older than this one


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
    """The detail with personal values replaced, at any depth (the auditor's view).

    Predicate texts keep their shape but every literal becomes '***': which column a filter
    named is the auditor's business, the national ID it named is not.
    """
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if key in PERSONAL_COLUMNS and value is not None:
            out[key] = "***"
        elif key in _PREDICATE_KEYS and isinstance(value, str):
            out[key] = _LITERAL.sub("'***'", value)
        elif isinstance(value, dict):
            out[key] = redact(value)
        else:
            out[key] = value
    return out


def personal_fields(detail: Any) -> set[str]:
    """Fields (policy names) whose values `detail` shows, at any depth, predicates included."""
    found: set[str] = set()
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in PERSONAL_COLUMNS and value is not None:
                found.add(PERSONAL_FIELD_OF[key])
            elif key in _PREDICATE_KEYS and isinstance(value, str):
                found.update(f for c, f in PERSONAL_FIELD_OF.items() if c in value)
            found |= personal_fields(value)
    elif isinstance(detail, list):
        for item in detail:
            found |= personal_fields(item)
    return found


def diff_reads(table: str, diffs: Iterable[Any]) -> dict[int, set[str]]:
    """Recipient id -> personal fields a restore's row diffs show (recipients rows only)."""
    reads: dict[int, set[str]] = {}
    if table != "recipients":
        return reads
    for diff in diffs:
        key, columns = (diff["key"], diff["columns"]) if isinstance(diff, dict) \
            else (diff.key, diff.columns)
        shown = {PERSONAL_FIELD_OF[c] for c in columns if c in PERSONAL_FIELD_OF}
        if shown and isinstance(key.get("id"), int):
            reads.setdefault(key["id"], set()).update(shown)
    return reads


async def record_operator_read(database_url: str, actor: str, operation: str,
                               reads: dict[int, set[str]]) -> None:
    """Audit row values a command prints, before it prints them (a failure stops the output).

    Operators connect as the database owner, outside the API's principal settings.
    """
    if not reads:
        return
    try:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "INSERT INTO audit_log (actor_sub, actor_role, action, operation, recipient_ids, "
                "fields, detail) VALUES ($1, 'admin', 'read', $2, $3, $4, '{}'::jsonb)",
                actor, operation, sorted(reads), sorted(set().union(*reads.values())))
        finally:
            await conn.close()
    except (asyncpg.PostgresError, OSError) as exc:
        raise DatabaseError(f"could not audit the {len(reads)} people whose values would be "
                            f"shown ({type(exc).__name__}: {exc}); nothing was printed") from exc


ACCESS_CURSOR_KIND = "access"


@dataclass(frozen=True)
class AccessPage:
    """Which page of one recipient's access log: `first` entries older than cursor `after`."""

    recipient_id: int
    first: int | None = None
    after: str | None = None


async def access_log(session: Session, pages: list[AccessPage]) -> list[list[AccessEntry]]:
    """Per recipient, who touched their data, newest first, one page each: the DataLoader
    batch. Each recipient gets their own LIMIT, so a busy neighbour in the batch cannot push
    anyone's entries out, and `after` reaches every entry however many there are."""
    results: dict[AccessPage, list[AccessEntry]] = {}
    by_window: dict[tuple[int, int | None], list[AccessPage]] = {}
    for page in set(pages):
        size = page_size(page.first if page.first is not None else MAX_FIRST)
        key = decode_cursor(ACCESS_CURSOR_KIND, page.after, 1)
        if key is not None and not isinstance(key[0], int):
            raise BadUserInput(f"after: {page.after!r} is not an access-log cursor")
        by_window.setdefault((size, key[0] if key else None), []).append(page)
    for (size, before), group in by_window.items():
        rows = await session.fetch(
            "SELECT x.rid, a.id, a.at, a.action, a.actor_role, a.actor_center_id, "
            "a.actor_district_id, a.fields FROM unnest($1::bigint[]) AS x(rid) "
            "CROSS JOIN LATERAL (SELECT * FROM audit_log WHERE recipient_ids @> ARRAY[x.rid] "
            "AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3) a "
            "ORDER BY x.rid, a.id DESC", [p.recipient_id for p in group], before, size)
        grouped: dict[int, list[AccessEntry]] = {}
        for row in rows:
            grouped.setdefault(row["rid"], []).append(AccessEntry(
                at=row["at"], action=row["action"], role=row["actor_role"],
                center_id=row["actor_center_id"], district_id=row["actor_district_id"],
                fields=list(row["fields"]),
                cursor=encode_cursor(ACCESS_CURSOR_KIND, [row["id"]])))
        for page in group:
            results[page] = grouped.get(page.recipient_id, [])
    return [results[page] for page in pages]


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
