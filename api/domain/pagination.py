"""Relay-style pages: `first` checked (never clamped), opaque cursors over the sort key."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from api.domain.errors import BadUserInput

DEFAULT_FIRST = 20
MAX_FIRST = 100
T = TypeVar("T")


def page_size(first: int | None) -> int:
    """`first` as given, or the default; BadUserInput outside 1..MAX_FIRST."""
    if first is None:
        return DEFAULT_FIRST
    if not 1 <= first <= MAX_FIRST:
        raise BadUserInput(f"first: {first} is out of range; ask for 1 to {MAX_FIRST} items "
                           "and page on with `after`")
    return first


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None, length: int) -> list[Any] | None:
    """The sort key inside `cursor` (None when there is none); BadUserInput when forged."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadUserInput(f"after: {cursor!r} is not a cursor from this API") from exc
    if not (isinstance(value, list) and len(value) == length + 1 and value[0] == kind):
        raise BadUserInput(f"after: {cursor!r} is not a {kind} cursor; pass an endCursor "
                           f"from the same list")
    return value[1:]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next: bool


def make_page(rows: list[T], size: int, cursor_of: Callable[[T], str]) -> Page[T]:
    """Rows fetched with LIMIT size + 1: the extra row only says there is a next page."""
    items = rows[:size]
    return Page(items=items, cursors=[cursor_of(item) for item in items],
                has_next=len(rows) > size)
