"""Reading recipients within the principal's row scope."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from api.db.session import Session
from api.domain.conditions import Conditions
from api.domain.errors import BadUserInput, NotFound
from api.domain.pagination import Page, decode_cursor, encode_cursor, make_page, page_size
from api.domain.records import RECIPIENT_COLUMNS, RECIPIENT_FROM, Recipient
from api.domain.scope import recipients_in_scope, residents_not_frozen
from api.fields import is_id

CURSOR_KIND = "recipient"


@dataclass(frozen=True)
class RecipientFilter:
    district_id: int | None = None
    center_id: int | None = None
    national_id: str | None = None
    phone: str | None = None
    name_prefix: str | None = None
    registered_from: date | None = None
    registered_to: date | None = None


def parse_id(value: str, what: str = "id") -> int:
    """A database id given as a GraphQL ID; BadUserInput when it is not one."""
    if not is_id(value):
        raise BadUserInput(f"{what}: {value!r} is not an id; ids are whole numbers like \"42\"")
    return int(value)


def _like_prefix(prefix: str) -> str:
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def get(session: Session, recipient_id: int) -> Recipient:
    """The recipient, if in scope; NotFound otherwise (existence is not revealed)."""
    where = Conditions().add("r.id = {p}", recipient_id)
    recipients_in_scope(where, session.principal)
    row = await session.fetchrow(f"SELECT {RECIPIENT_COLUMNS} FROM {RECIPIENT_FROM} "
                                 f"{where.where()}", *where.args)
    if row is None:
        raise NotFound(f"no recipient {recipient_id} in your scope")
    return Recipient.from_row(row)


async def by_ids(session: Session, ids: Sequence[int]) -> list[Recipient | None]:
    """Recipients for `ids` in order (None where out of scope): the DataLoader batch."""
    where = Conditions().add("r.id = ANY({p})", list(set(ids)))
    recipients_in_scope(where, session.principal)
    rows = await session.fetch(f"SELECT {RECIPIENT_COLUMNS} FROM {RECIPIENT_FROM} "
                               f"{where.where()}", *where.args)
    found = {row["id"]: Recipient.from_row(row) for row in rows}
    return [found.get(i) for i in ids]


async def search(session: Session, filters: RecipientFilter, first: int | None,
                 after: str | None) -> Page[Recipient]:
    """One page of in-scope recipients matching `filters`, by id."""
    size = page_size(first)
    key = decode_cursor(CURSOR_KIND, after, 1)
    if filters.name_prefix is not None and not filters.name_prefix.strip():
        raise BadUserInput("namePrefix: give at least one letter")
    where = Conditions()
    recipients_in_scope(where, session.principal)
    (where.add_if(filters.district_id, "r.district_id = {p}")
          .add_if(filters.center_id, "r.center_id = {p}")
          .add_if(filters.national_id, "r.national_id = {p}")
          .add_if(filters.phone, "r.phone = {p}")
          .add_if(filters.registered_from, "r.registered_at >= {p}::date")
          .add_if(filters.registered_to, "r.registered_at < {p}::date + 1"))
    if filters.name_prefix is not None:
        where.add("lower(r.full_name) LIKE {p}", _like_prefix(filters.name_prefix.strip()))
    if any(v is not None for v in (filters.national_id, filters.phone, filters.name_prefix)):
        residents_not_frozen(where, session.principal)
    if key is not None:
        if not isinstance(key[0], int):
            raise BadUserInput(f"after: {after!r} is not a recipient cursor")
        where.add("r.id > {p}", key[0])
    limit = where.param(size + 1)
    rows = await session.fetch(f"SELECT {RECIPIENT_COLUMNS} FROM {RECIPIENT_FROM} "
                               f"{where.where()} ORDER BY r.id LIMIT {limit}", *where.args)
    return make_page([Recipient.from_row(row) for row in rows], size,
                     lambda r: encode_cursor(CURSOR_KIND, [r.id]))
